"""SENTTrainer overrides private GRPOTrainer methods: fail loudly when TRL changes under us."""

import inspect

import trl
from trl import GRPOTrainer

from sent.trainer import SENTTrainer


# Signatures of the TRL 1.16.0 methods SENTTrainer overrides (or calls: _get_per_token_logps_and_entropies).
RECORDED = {
    '__init__': (
        "(self, model: 'str | PreTrainedModel | PeftModel', reward_funcs: str | transformers.modeling_utils.P"
        'reTrainedModel | collections.abc.Callable[..., list[float | None]] | list[str | transformers.modelin'
        'g_utils.PreTrainedModel | collections.abc.Callable[..., list[float | None]]] | None = None, args: tr'
        'l.trainer.grpo_config.GRPOConfig | None = None, train_dataset: datasets.arrow_dataset.Dataset | data'
        'sets.iterable_dataset.IterableDataset | None = None, eval_dataset: datasets.arrow_dataset.Dataset | '
        'datasets.iterable_dataset.IterableDataset | datasets.dataset_dict.DatasetDict | datasets.dataset_dic'
        't.IterableDatasetDict | dict[str, datasets.arrow_dataset.Dataset | datasets.iterable_dataset.Iterabl'
        'eDataset] | None = None, processing_class: transformers.tokenization_utils_base.PreTrainedTokenizerB'
        'ase | transformers.processing_utils.ProcessorMixin | None = None, reward_processing_classes: transfo'
        'rmers.tokenization_utils_base.PreTrainedTokenizerBase | list[transformers.tokenization_utils_base.Pr'
        'eTrainedTokenizerBase] | None = None, callbacks: list[transformers.trainer_callback.TrainerCallback]'
        ' | None = None, optimizers: tuple[torch.optim.optimizer.Optimizer | None, torch.optim.lr_scheduler.L'
        "ambdaLR | None] = (None, None), quantization_config: 'BitsAndBytesConfig | None' = None, peft_config"
        ": 'PeftConfig | None' = None, tools: list[collections.abc.Callable] | None = None, rollout_func: col"
        "lections.abc.Callable[[list[str], 'GRPOTrainer'], dict[str, typing.Any]] | None = None, environment_"
        'factory: collections.abc.Callable[[], trl.trainer.grpo_trainer._SupportsReset] | dict[str, collectio'
        'ns.abc.Callable[[], trl.trainer.grpo_trainer._SupportsReset]] | None = None)'
    ),
    '_generate_and_score_completions': (
        '(self, inputs: list[dict[str, torch.Tensor | typing.Any]]) -> dict[str, torch.Tensor | typing.Any]'
    ),
    '_compute_loss': (
        '(self, model, inputs)'
    ),
    '_generate_single_turn': (
        '(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False)'
    ),
    '_save_checkpoint': (
        '(self, model, trial)'
    ),
    '_get_output_dir': (
        "(self, trial: 'optuna.Trial | dict[str, Any] | None') -> str"
    ),
    '_get_per_token_logps_and_entropies': (
        '(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, com'
        'pute_aux_loss=False, pixel_values=None, image_grid_thw=None, num_images=None, pixel_attention_mask=N'
        'one, spatial_shapes=None, num_tiles=None, image_sizes=None, token_type_ids=None, mm_token_type_ids=N'
        'one, image_position_ids=None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]'
    ),
}


def test_trl_version_is_pinned():
    assert trl.__version__ == "1.16.0", (
        f"trl {trl.__version__} installed; SENTTrainer was written against 1.16.0. Re-read grpo_trainer.py "
        "(_compute_loss aggregation, _generate_and_score_completions outputs) and update sent/trainer.py + this test.")


def test_overridden_signatures_unchanged():
    for name, recorded in RECORDED.items():
        actual = str(inspect.signature(getattr(GRPOTrainer, name)))
        assert actual == recorded, f"GRPOTrainer.{name} changed:\n  recorded {recorded}\n  actual   {actual}"


def test_overrides_are_the_documented_ones():
    ours = {n for n, v in vars(SENTTrainer).items() if callable(v) and hasattr(GRPOTrainer, n)}
    assert ours == {"__init__", "_generate_and_score_completions", "_compute_loss", "_save_checkpoint",
                    "_get_output_dir", "_generate_single_turn"}
    doc = __import__("sent.trainer", fromlist=["x"]).__doc__
    assert all(f"``{n}``" in doc for n in ours)


def test_generate_path_calls_model_generate():
    """SENTTrainer._generate_single_turn installs sent.fast_decode as ``model.generate`` around TRL's HF path."""
    src = inspect.getsource(GRPOTrainer._generate_single_turn)
    assert "unwrapped_model.generate(" in src, "TRL no longer samples through model.generate: revisit fast_decode"


def test_logps_helper_returns_three_values():
    src = inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    assert "return logps, entropies, aux_loss" in src, "TRL changed the (logps, entropies, aux) 3-tuple"


def test_checkpoints_are_written_under_get_output_dir():
    """SENTTrainer._save_checkpoint stages a checkpoint by redirecting _get_output_dir (sent.checkpoints)."""
    from transformers import Trainer
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from sent.checkpoints import CHECKPOINT_PREFIX

    src = inspect.getsource(Trainer._save_checkpoint)
    assert "run_dir = self._get_output_dir(trial=trial)" in src and "os.path.join(run_dir, checkpoint_folder)" in src
    assert "rotate_checkpoints(" in src and PREFIX_CHECKPOINT_DIR == CHECKPOINT_PREFIX
