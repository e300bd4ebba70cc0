"""SENTTrainer against stock TRL GRPOTrainer on a tiny random Llama (CPU, seconds)."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from sent.trainer import SENTTrainer
from sent.trainer_config import SENTConfig
from tests._tiny import build_tiny_model, tiny_reward, tiny_rows


COMMON = dict(use_cpu=True, report_to=[], per_device_train_batch_size=8, num_generations=4, max_completion_length=10,
              logging_steps=1, save_strategy="no", learning_rate=1e-2, seed=0, gradient_checkpointing=False,
              disable_tqdm=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _train(trainer_cls, config, path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = trainer_cls(model=model, reward_funcs=tiny_reward, args=config,
                          train_dataset=Dataset.from_list(tiny_rows(32)), processing_class=AutoTokenizer.from_pretrained(path))
    trainer.train()
    return trainer, [h for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("loss_type,bias", [("dapo", True), ("grpo", False), ("bnpo", True)])
def test_grpo_method_equals_stock_trl(tiny, tmp_path, loss_type, bias):
    kw = dict(COMMON, max_steps=3, beta=0.04, loss_type=loss_type, use_bias_correction_kl=bias)
    _, stock = _train(GRPOTrainer, GRPOConfig(output_dir=str(tmp_path / "a"), **kw), tiny)
    _, ours = _train(SENTTrainer, SENTConfig(output_dir=str(tmp_path / "b"), method="grpo", **kw), tiny)
    assert len(stock) == len(ours) == 3
    for a, b in zip(stock, ours):
        for key in ("loss", "grad_norm", "reward", "kl", "entropy"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (key, a[key], b[key])
    assert ours[-1]["kl"] > 0  # the reference KL is active, so the check covers it


def test_sent_logs_gate_metrics_and_beta_only_on_low_entropy(tiny, tmp_path):
    config = SENTConfig(output_dir=str(tmp_path), method="sent", beta=0.001, max_steps=2, record_rollouts_every=1,
                        high_cov_ratio=0.05, **COMMON)
    trainer, logs = _train(SENTTrainer, config, tiny)
    for row in logs:
        for key in ("entropy/all", "entropy/low", "entropy/high_cov", "share/low", "share/high_cov", "beta/mean",
                    "kl/ref", "kl/old", "cov/mean", "cov/std", "cov/max", "stage", "length/mean"):
            assert key in row and not math.isnan(row[key]), key
        assert row["share/low"] == pytest.approx(0.8, abs=0.03)  # int(0.8 * N) of N valid tokens, N ~ 70
        assert row["kl/old"] == 0.0  # on-policy: old logp == logp
    from sent.artifacts import read_rollouts
    df = read_rollouts(tmp_path / "rollouts")
    assert sorted(df["step"].unique()) == [1, 2] and len(df) == 16  # 8 rows per micro-batch, 1 micro-step per step
    beta = np.concatenate(df["beta"].to_numpy()).astype(np.float64)
    low = np.concatenate(df["low_entropy"].to_numpy())
    high = np.concatenate(df["high_cov"].to_numpy())
    assert (beta[~low] == 0).all() and high.sum() >= 2 and not (high & ~low).any()
    assert np.allclose(beta[high], 0.2) and np.allclose(beta[low & ~high], 0.05)  # beta_high / beta_low


def test_config_rejects_unsupported_and_on_policy_kl_cov(tmp_path):
    base = dict(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    with pytest.raises(ValueError, match="loss_type"):
        SENTConfig(loss_type="cispo", **base)
    with pytest.raises(ValueError, match="method"):
        SENTConfig(method="nope", **base)
    with pytest.raises(ValueError, match="importance_sampling_level"):
        SENTConfig(importance_sampling_level="sequence", **base)
    with pytest.raises(ValueError, match="steps_per_generation"):
        SENTConfig(method="kl_cov", **base)  # one update per generation batch: |logp-old| == 0
    ok = SENTConfig(method="kl_cov", steps_per_generation=2, save_steps=2, **base)
    assert ok.computes_old_logps() and ok.updates_per_generation() == 2
    with pytest.raises(ValueError, match="save_steps"):
        SENTConfig(method="kl_cov", steps_per_generation=2, save_steps=3, **base)
    with pytest.raises(ValueError, match="low_entropy_ratio"):
        SENTConfig(low_entropy_ratio=1.5, **base)


def test_kl_cov_gets_real_old_logps(tiny, tmp_path):
    config = SENTConfig(output_dir=str(tmp_path), method="kl_cov", kl_cov_ratio=0.2, max_steps=2,
                        steps_per_generation=2, **COMMON)
    _, logs = _train(SENTTrainer, config, tiny)
    assert logs[0]["kl/old"] == 0.0  # first update of the generation batch: policy == old policy
    assert logs[1]["kl/old"] > 0.0  # second update: the policy moved (lr 1e-2)


def _metrics(path):
    import json
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_command_resume_matches_uninterrupted_run(tiny, tmp_path, monkeypatch):
    from sent.artifacts import read_rollouts
    from sent.commands import train
    from sent.trainer import MetricsJSONLCallback

    args = ["--model_name_or_path", str(tiny), "--train_data", "synthetic:math:32", "--method", "sent",
            "--beta", "0.001", "--max_steps", "4", "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", "10", "--learning_rate", "1e-2", "--lr_scheduler_type", "constant",
            "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "2", "--record_rollouts_every", "1",
            "--use_cpu", "true", "--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none",
            "--disable_tqdm", "true", "--seed", "0"]
    assert train.main(args + ["--root", str(tmp_path / "a")]) == 0
    run_a = tmp_path / "a" / "runs" / "sent" / "seed0"
    assert (run_a / "DONE").exists() and (run_a / "final" / "config.json").exists()

    def stop_after_3(self, args_, state, control, **kw):  # "killed" after step 3, last checkpoint at step 2
        if state.global_step == 3:
            control.should_training_stop = True
    monkeypatch.setattr(MetricsJSONLCallback, "on_step_end", stop_after_3, raising=False)
    assert train.main(args + ["--root", str(tmp_path / "b")]) == 1
    run_b = tmp_path / "b" / "runs" / "sent" / "seed0"
    assert [m["step"] for m in _metrics(run_b / "metrics.jsonl")] == [1, 2, 3] and not (run_b / "DONE").exists()
    monkeypatch.undo()
    assert train.main(args + ["--root", str(tmp_path / "b")]) == 0
    a, b = _metrics(run_a / "metrics.jsonl"), _metrics(run_b / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4]  # step 3 dropped at resume and redone, nothing duplicated
    for x, y in zip(a, b):
        for key in ("loss", "grad_norm", "reward", "entropy/all", "share/low", "kl/ref"):
            assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-7), (x["step"], key)
    ra, rb = read_rollouts(run_a / "rollouts"), read_rollouts(run_b / "rollouts")
    assert ra["step"].tolist() == rb["step"].tolist() and ra["prompt_id"].tolist() == rb["prompt_id"].tolist()


def test_token_filter_content_keeps_function_words_and_numbers_out_of_the_low_entropy_set(tiny, tmp_path):
    from sent.artifacts import read_rollouts
    from sent.tokens import classify_token

    config = SENTConfig(output_dir=str(tmp_path), method="sent", beta=0.001, max_steps=2, record_rollouts_every=1,
                        high_cov_ratio=0.05, token_filter="content", **COMMON)
    _train(SENTTrainer, config, tiny)
    df = read_rollouts(tmp_path / "rollouts")
    tokens = np.concatenate(df["tokens"].to_numpy())
    low = np.concatenate(df["low_entropy"].to_numpy())
    classes = np.array([classify_token(t) for t in tokens])
    # the tiny vocabulary has digits (numbers), "so"/"the"/"is"/"and" (function words), "." (punctuation)
    assert (classes != "content").any() and low.any()
    assert (classes[low] == "content").all(), sorted(set(tokens[low & (classes != "content")]))


def test_default_token_filter_is_a_list_level_mask():
    from sent.trainer import load_token_filter

    fn = load_token_filter(SENTConfig(output_dir="unused", method="sent", token_filter="content",
                                      use_cpu=True).token_filter_fn)
    assert fn(["the", "apples", ",", "7", "Ann"]) == [False, True, False, False, True]
