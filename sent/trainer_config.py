"""``SENTConfig``: TRL's ``GRPOConfig`` plus the knobs of the ``sent.losses`` registry, the curriculum and recording;
``TrainScriptArguments`` (data, paths, prompt, reward) and :func:`train_parser`, the parser of ``sent train``.

Every field carries its unit, range, the paper's value and the section of ``reference/paper.md`` it comes from.
The loss knobs are declared once, in ``sent.loss_settings.LossSettings`` (default, help, range check): SENTConfig
gets them as fields through ``_LossArguments``, built from ``dataclasses.fields(LossSettings)``, reads the others
from TRL's own fields named by ``metadata["trl_field"]`` (``epsilon``, ``epsilon_high``, ``beta``, ``entropy_coef``,
``use_bias_correction_kl``), and validates them with the same ``LossSettings.validate`` (:meth:`loss_settings`).
``__post_init__`` also rejects TRL options that ``SENTTrainer._compute_loss`` does not reproduce, with a message
that says what to use instead.

Off-policy requirement (kl_cov, sent_release). Both penalise ``|log pi_theta - log pi_old|``. When every generation
batch is used for exactly one optimizer step, TRL does not compute ``old_per_token_logps`` (``None`` -> the loss
uses ``logp.detach()``), so the penalty and its gradient are identically 0 (reference/peers.md §2.2). We **refuse**
such configs: set ``steps_per_generation`` to a multiple of ``gradient_accumulation_steps`` greater than it (the
paper: 256 prompts per generation, 128 per optimizer step -> ``steps_per_generation = 2 * gradient_accumulation_steps``)
or ``num_iterations > 1``; then TRL computes the old-policy log-probs itself.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields, make_dataclass

from trl import GRPOConfig

from sent.loss_settings import LossSettings


# TRL's GRPOConfig sets `gradient_checkpointing` (transformers 5 renamed it `activation_checkpointing` and warns at
# every config built); nothing a user of `sent train` can act on, and it would precede every one-line error.
warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)

# Methods whose penalty is against the old (rollout) policy, so they need several updates per generation batch.
OFF_POLICY_METHODS = ("kl_cov", "sent_release")
# Methods whose token-level KL goes to the reference model even when the global k3 ``beta`` is 0.
REF_KL_METHODS = ("sent",)
SUPPORTED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
GATE_SCOPES = ("micro_batch", "global")
TOKEN_FILTERS = ("none", "content")
#: Environment variable that lets ``token_filter_fn`` import a module outside the ``sent`` package.
ALLOW_CUSTOM_FILTER_ENV = "SENT_ALLOW_CUSTOM_FILTER"


class CustomTokenFilterError(ValueError):
    """``token_filter_fn`` names a module outside ``sent`` and custom filters were not allowed."""


def check_token_filter_fn(path: str) -> None:
    """``token_filter_fn`` imports code named in a recipe, so only the project's own filters (``sent`` and
    ``sent.*`` modules) are accepted, unless ``SENT_ALLOW_CUSTOM_FILTER=1`` opts in to any ``module:function``.
    A recipe is data: a shared or downloaded one must not run arbitrary code by naming it."""
    module = path.partition(":")[0].strip()
    if module == "sent" or module.startswith("sent."):
        return
    if os.environ.get(ALLOW_CUSTOM_FILTER_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    raise CustomTokenFilterError(
        f"token_filter_fn={path!r} is outside the sent package; only the project's own filters (e.g. "
        f"'sent.tokens:content_mask') are imported unless {ALLOW_CUSTOM_FILTER_ENV}=1 is set")


def _help(text: str) -> dict:
    """Field metadata; '%' is doubled because argparse %-formats help strings (``sent train --help``)."""
    return {"help": text.replace("%", "%%")}


def _config_name(f) -> str:
    """The SENTConfig field that carries LossSettings field ``f``."""
    return f.metadata.get("trl_field", f.name)


# The loss knobs as SENTConfig fields, made from LossSettings' own declaration: every field of LossSettings except
# those SENTConfig reads from TRL's GRPOConfig fields as TRL declares them; "override_trl" ones redeclare TRL's field
# with LossSettings' default and help. A base class placed before GRPOConfig, so that its fields override TRL's.
_LossArguments = make_dataclass(
    "_LossArguments",
    [(_config_name(f), f.type, field(default=f.default, metadata=_help(f.metadata["help"])))
     for f in fields(LossSettings) if "trl_field" not in f.metadata or f.metadata.get("override_trl")],
    namespace={"__module__": __name__},
)


@dataclass
class SENTConfig(_LossArguments, GRPOConfig):
    """GRPOConfig + SENT: the loss knobs (from ``LossSettings``), ``method``, the curriculum, recording and the gate
    scope. TRL fields used as loss settings: ``beta`` (global k3 KL to the reference on all tokens, paper 0.001,
    §1.7), ``use_bias_correction_kl`` (k3 x IS ratio; default False here), ``epsilon``/``epsilon_high`` (PPO clip),
    ``entropy_coef`` (only for ``method=entropy_bonus``)."""

    method: str = field(default="sent", metadata=_help(
        "Loss from the sent.losses registry: grpo, entropy_bonus, entropy_adv, clip_cov, kl_cov, high_entropy, sent, "
        "sent_release (DESIGN.md §5)."))
    # --- curriculum (paper §3) ---
    curriculum_dir: str | None = field(default=None, metadata=_help(
        "Folder with manifest.json + stage_{i}.parquet (sent curriculum). Stages are trained in order, low SE first."))
    epochs_per_stage: int = field(default=5, metadata=_help(
        "Epochs over each curriculum stage (>=1). Released scripts: 5. Runs without a curriculum use num_train_epochs "
        "(a whole number) the same way: passes over the shuffled table."))
    curriculum_stage: int | None = field(default=None, metadata=_help(
        "Train only this curriculum stage (1-based) as its own run, starting from model_name_or_path (the previous "
        "stage's final weights, which TRL also loads as the reference model) with a fresh optimizer and LR schedule, "
        "as the authors' scripts do. None: `sent train` runs every stage in turn, each as its own trainer. "
        "reproduce/run_all.sh runs each stage as its own process (needed under DeepSpeed/FSDP)."))
    # --- token filter (analysis: linguistic filtering) ---
    token_filter: str = field(default="none", metadata=_help(
        "'none' or 'content': with 'content', tokens for which token_filter_fn is False (function words, "
        "punctuation) are excluded from the low-entropy set via LossInputs.eligible."))
    token_filter_fn: str = field(default="sent.tokens:content_mask", metadata=_help(
        "Import path 'module:function' of fn(token_strings: list[str]) -> list[bool] (True = eligible). Only "
        "modules of the sent package unless the environment sets SENT_ALLOW_CUSTOM_FILTER=1."))
    # --- recording / scope ---
    record_rollouts_every: int = field(default=0, metadata=_help(
        "Write token-level rollouts every N optimizer steps to <output_dir>/rollouts (0 = off)."))
    record_max_rows: int = field(default=256, metadata=_help("At most this many responses per recorded step (>=1)."))
    gate_scope: str = field(default="micro_batch", metadata=_help(
        "'micro_batch': entropy quantile and covariance means per micro-batch per rank (verl, released code); "
        "'global': over the micro-batches of all ranks gathered (like TRL's get_high_entropy_mask)."))

    def __post_init__(self):
        super().__post_init__()
        self._validate_sent()

    def _validate_sent(self) -> None:
        from sent.losses import LOSSES

        if self.method not in LOSSES:
            raise ValueError(f"method={self.method!r} is unknown; valid methods: {', '.join(sorted(LOSSES))}")
        if self.loss_type not in SUPPORTED_LOSS_TYPES:
            raise ValueError(f"loss_type={self.loss_type!r} is not supported by SENTTrainer; use one of "
                             f"{SUPPORTED_LOSS_TYPES} (the registry owns the per-token objective)")
        unsupported = {
            "use_liger_kernel": (self.use_liger_kernel, False, "set use_liger_kernel=false"),
            "importance_sampling_level": (self.importance_sampling_level, "token", "sequence-level IS (GSPO) is not "
                                          "implemented: set importance_sampling_level=token"),
            "top_entropy_quantile": (self.top_entropy_quantile, 1.0, "use method=high_entropy with "
                                     "high_entropy_ratio instead"),
            "use_adaptive_entropy": (self.use_adaptive_entropy, False, "use method=entropy_bonus with a fixed "
                                     "entropy_coef"),
            "off_policy_mask_threshold": (self.off_policy_mask_threshold, None, "set it to None"),
            "delta": (self.delta, None, "two-sided clipping is not implemented: set delta=None"),
            "sync_ref_model": (self.sync_ref_model, False, "the reference is reset at each curriculum stage (stage runs)"),
        }
        for name, (value, ok, fix) in unsupported.items():
            if value != ok:
                raise ValueError(f"{name}={value!r} is not supported by SENTTrainer: {fix}")
        if self.entropy_coef != 0.0 and self.method != "entropy_bonus":
            raise ValueError(f"entropy_coef={self.entropy_coef} is used only by method=entropy_bonus; set it to 0 "
                             "or choose method=entropy_bonus")
        self._validate_ranges()
        if self.method in OFF_POLICY_METHODS and not self.computes_old_logps():
            raise ValueError(
                f"method={self.method} penalises |logp - old_logp|, which is 0 with zero gradient when each generation "
                "batch serves one optimizer step. Set steps_per_generation to a multiple > gradient_accumulation_steps "
                f"(now {self.steps_per_generation} and {self.gradient_accumulation_steps}; the paper uses 2 updates "
                "per generation batch) or num_iterations > 1.")
        if self.save_strategy == "steps" and self.updates_per_generation() > 1:
            if int(self.save_steps) % self.updates_per_generation():
                raise ValueError(
                    f"save_steps={self.save_steps} must be a multiple of the optimizer steps per generation batch "
                    f"({self.updates_per_generation()}), otherwise a resumed run regenerates mid-batch and diverges")

    def _validate_ranges(self) -> None:
        """The loss knobs through ``LossSettings.validate`` (their one range check), then SENTConfig's own fields."""
        self.loss_settings()
        if self.gate_scope not in GATE_SCOPES:
            raise ValueError(f"gate_scope={self.gate_scope!r} must be one of {GATE_SCOPES}")
        if self.token_filter not in TOKEN_FILTERS:
            raise ValueError(f"token_filter={self.token_filter!r} must be one of {TOKEN_FILTERS}")
        if self.token_filter == "content" and ":" not in self.token_filter_fn:
            raise ValueError(f"token_filter_fn={self.token_filter_fn!r} must look like 'package.module:function'")
        if self.token_filter == "content":
            check_token_filter_fn(self.token_filter_fn)
        if not self.learning_rate >= 0:  # also NaN
            raise ValueError(f"learning_rate={self.learning_rate} must be >= 0")
        if self.epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage={self.epochs_per_stage} must be >= 1")
        if self.curriculum_stage is not None and (self.curriculum_stage < 1 or self.curriculum_dir is None):
            raise ValueError(f"curriculum_stage={self.curriculum_stage} needs curriculum_dir and a value >= 1")
        if self.curriculum_dir is None and self.max_steps <= 0 and (
                self.num_train_epochs < 1 or float(self.num_train_epochs) != int(self.num_train_epochs)):
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be a whole number >= 1 (every prompt is "
                             "seen that many times; use max_steps for a partial pass)")
        if self.record_rollouts_every < 0 or self.record_max_rows < 1:
            raise ValueError("record_rollouts_every must be >= 0 (0 = off) and record_max_rows >= 1")

    def updates_per_generation(self) -> int:
        """Optimizer steps served by one generation batch (1 = on-policy)."""
        return max(1, self.steps_per_generation * self.num_iterations // self.gradient_accumulation_steps)

    def computes_old_logps(self) -> bool:
        """Mirror of TRL's rule (grpo_trainer.py L2642): old logps exist when generation is reused across updates."""
        generate_every = self.steps_per_generation * self.num_iterations
        return self.gradient_accumulation_steps % generate_every != 0 or (
            self.use_vllm and self.vllm_importance_sampling_correction)

    def needs_reference(self) -> bool:
        """True when some term compares to pi_ref: the global k3 (beta > 0) or the SENT token KL."""
        token_kl = self.method in REF_KL_METHODS and self.use_low_entropy_kl and self.beta_high > 0
        return self.beta > 0 or token_kl

    def loss_settings(self) -> LossSettings:
        """The ``sent.loss_settings.LossSettings`` for this config (validated), one value per LossSettings field."""
        values = {f.name: getattr(self, _config_name(f)) for f in fields(LossSettings)}
        if values["epsilon_high"] is None:  # TRL: epsilon_high None means epsilon
            values["epsilon_high"] = self.epsilon
        return LossSettings(**values)


@dataclass
class TrainScriptArguments:
    """The ``sent train`` arguments that are not trainer settings: data, paths, prompt and reward."""

    train_data: str = field(default="synthetic:math:512", metadata={"help": (
        "Training prompts: 'synthetic:<math|relations>:<n>' (offline generator), 'curriculum' (use --curriculum_dir),"
        " a parquet/jsonl file in the common schema or an SE table, or 'benchmark:<name>' (e.g. benchmark:dapo; "
        "needs --allow_download, fixtures in --dry_run).")})
    root: str = field(default="artifacts/cpu", metadata={"help": "Artifact root; the run goes to <root>/runs/<run>/seed<k>."})
    run: str | None = field(default=None, metadata={"help": "Run name (default: the method)."})
    prompt_template: str = field(default="toy", metadata={"help": (
        "'toy', 'paper' (\\boxed{} instruction), 'dapo' (DAPO-Math-17k's 'Answer:' instruction) or a string with "
        "{problem}.")})
    reward_rule: str = field(default="math_verify", metadata={"help": (
        "'math_verify' (last \\boxed{} checked by math-verify; the toy and evaluation) or 'math_dapo' (verl's "
        "math_dapo.compute_score: Minerva 'Answer:' pattern on the last 300 characters; the paper profiles).")})
    chat: bool = field(default=False, metadata={"help": "Conversational prompts (chat template), for chat models."})
    reward_correct: float = field(default=1.0, metadata={"help": "Reward of a correct answer (released code: 1)."})
    reward_incorrect: float = field(default=0.0, metadata={"help": "Reward of a wrong answer (released code: -1)."})
    allow_download: bool = field(default=False, metadata={"help": "Allow hub downloads of benchmark data."})
    dry_run: bool = field(default=False, metadata={"help": "Build config + datasets (fixtures), write nothing, exit."})
    overwrite: bool = field(default=False, metadata={"help": (
        "Delete the run folder's contents and start afresh. Without it, a run folder that was started with other "
        "settings (config.yaml) is refused instead of resumed.")})


def train_parser():
    """TRL's ``TrlParser`` over ``(TrainScriptArguments, SENTConfig, ModelConfig)``: how ``sent train`` reads its
    command line and recipe, and how :func:`sent.plans.effective_values` reads a resolved recipe."""
    from trl import ModelConfig, TrlParser

    return TrlParser((TrainScriptArguments, SENTConfig, ModelConfig))


# ------------------------------------------------------------------------------------------------ resume check
#: Settings that do not change what a run computes, left out when a resumed run is compared with its earlier start:
#: the folder it writes (``root``, ``run``, ``output_dir``, ``run_name``), the start itself (``overwrite``,
#: ``dry_run``, ``resume_from_checkpoint``, ``allow_download``), the curriculum stage (each stage is its own
#: ``sent train --curriculum_stage k`` process into the same run folder), logging and progress output, checkpoint
#: saving (a resume continues from the last checkpoint whatever the interval), what is recorded (rollouts), memory
#: (activation checkpointing recomputes the same values), data-loader workers and rank bookkeeping. Every other
#: resolved setting (script, model and trainer fields) must be equal, or ``sent train`` stops (``--overwrite``
#: starts afresh).
RESUME_IGNORED = frozenset({
    "root", "run", "output_dir", "run_name", "overwrite", "dry_run", "resume_from_checkpoint", "allow_download",
    "curriculum_stage",
    "disable_tqdm", "logging_strategy", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_level",
    "log_level_replica", "log_on_each_node", "log_completions", "log_completions_hub_repo", "log_multimodal",
    "log_unique_prompts", "num_completions_to_print", "report_to", "project", "trackio_bucket_id", "trackio_space_id",
    "trackio_static_space_id", "include_num_input_tokens_seen", "skip_memory_metrics",
    "save_strategy", "save_steps", "save_total_limit", "save_only_model", "save_on_each_node", "push_to_hub",
    "hub_always_push", "hub_model_id", "hub_private_repo", "hub_revision", "hub_strategy", "hub_token",
    "record_rollouts_every", "record_max_rows",
    "gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_checkpointing",
    "activation_checkpointing_kwargs",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "local_rank", "ddp_timeout",
})
#: Settings ``sent train`` changes after parsing (``max_steps`` computed from the data, the model converted or taken
#: from the previous curriculum stage, the data order fixed): a ``config.yaml`` written before the ``requested`` key
#: existed records the derived values, so these are not compared against it.
DERIVED_AT_START = frozenset({"max_steps", "model_name_or_path", "shuffle_dataset"})


def requested_settings(script, config, model_args) -> dict:
    """Every ``sent train`` setting as parsed (before the command derives anything), flat ``{name: value}`` with
    values as YAML stores them; ``config.yaml`` keeps it under ``requested`` for the resume check."""
    import json
    from dataclasses import asdict

    import yaml

    flat = {**json.loads(json.dumps(asdict(script), default=str)),
            **json.loads(json.dumps(asdict(model_args), default=str)),
            **json.loads(config.to_json_string())}
    return yaml.safe_load(yaml.safe_dump(flat))


def resume_changes(recorded: dict, requested: dict) -> list[tuple[str, object, object]]:
    """``[(name, earlier value, new value)]`` of the settings that differ between a run folder's ``config.yaml``
    (``recorded``) and this start's :func:`requested_settings`, sorted by name; settings in :data:`RESUME_IGNORED`
    and settings one side does not record (added or removed by a code change) are not compared."""
    import yaml

    old = recorded.get("requested")
    ignored = RESUME_IGNORED
    if not isinstance(old, dict):  # written before `requested` existed: the resolved sections
        old = {}
        for section in ("script", "model", "config"):
            if isinstance(recorded.get(section), dict):
                old.update(recorded[section])
        ignored = ignored | DERIVED_AT_START
    new = yaml.safe_load(yaml.safe_dump(requested))
    return [(k, old[k], new[k]) for k in sorted(set(old) & set(new) - ignored) if old[k] != new[k]]


def _show(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, default=str)


def resume_changes_message(folder, changes: list[tuple[str, object, object]]) -> str:
    """``<folder> was started with learning_rate=0.0003, now 0.001 (and 1 more: seed); rerun ...`` (one line)."""
    name, old, new = changes[0]
    more = ""
    if len(changes) > 1:
        names = [c[0] for c in changes[1:]]
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        more = f" (and {len(names)} more: {listed})"
    return (f"{folder} was started with {name}={_show(old)}, now {_show(new)}{more}; rerun with the old settings or "
            "pass --overwrite to start afresh")
