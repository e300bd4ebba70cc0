"""Covariance bootstrap: hand-computed CV, identical replicates, agreement with the plain loop, schema, CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from sent.artifacts import read_rollouts
from sent.commands import analyze
from sent.io import MissingArtifactError, atomic_write_parquet
from sent.rollouts import RolloutSchemaError, validate_rollouts
from sent_analysis.covariance_bootstrap import (
    StepArrays,
    bootstrap_step,
    group_advantages,
    reference_replicate,
    resample_counts,
    step_arrays,
    synthetic_rollouts,
)


def write_run(root, df, run="demo", seed=0):
    folder = root / "runs" / run / f"seed{seed}"
    for step, g in df.groupby("step"):
        atomic_write_parquet(folder / "rollouts" / f"step_{step:06d}.parquet", g.reset_index(drop=True))
    return folder


def hand_step():
    # 4 one-token responses; groups {0,1} and {2,3}; A = [1,-1,1,-1]; logp x = [0,-1,-4,-2]
    return StepArrays(
        resp=np.arange(4), entropy=np.array([0.1, 0.2, 0.3, 0.4]), logp=np.array([0.0, -1.0, -4.0, -2.0]),
        reward=np.array([1.0, 0.0, 1.0, 0.0]), advantage=np.array([1.0, -1.0, 1.0, -1.0]), group=np.array([0, 0, 1, 1]),
    )


def test_cv_hand_case():
    # low_entropy_ratio 1: every token is in T_low.
    # full sample: mean x = -1.75, Cov_t = A (x + 1.75) = [1.75, -0.75, -2.25, 0.25] -> batch Cov -0.25
    # replicate (2,2,0,0): x = [0,0,-1,-1], mean -0.5, A (x + 0.5) = 0.5 each      -> 0.5
    # replicate (0,0,2,2): x = [-4,-4,-2,-2], mean -3, A (x + 3) = -1 each          -> -1
    # CV = std([0.5, -1], ddof 1) / |mean| = (1.5 / sqrt 2) / 0.25 = 4.2426
    counts = np.array([[2, 2, 0, 0], [0, 0, 2, 2]])
    (row,), _ = bootstrap_step(hand_step(), counts, recompute_advantages=False, low_entropy_ratio=1.0,
                               top_k_ratios=(0.25,))
    assert row["cov_batch"] == pytest.approx(-0.25)
    assert row["cov_batch_cv"] == pytest.approx(1.5 / np.sqrt(2) / 0.25)
    # k = int(0.25 * 4) = 1: τ full = 1.75; replicates 0.5 and -1 -> same CV as above
    assert row["tau"] == pytest.approx(1.75)
    assert row["tau_cv"] == pytest.approx(1.5 / np.sqrt(2) / 0.25, rel=1e-6)
    assert row["flag_cv_gt30"]


def test_group_advantages_full_sample():
    # rewards [1, 0] in one group: mean 0.5, std (ddof 1) 0.7071 -> A = ±0.5 / (0.7071 + 1e-4)
    adv = group_advantages(np.array([1.0, 0.0]), np.array([0, 0]), np.ones((1, 2)))
    assert adv[0] == pytest.approx([0.5 / (np.sqrt(0.5) + 1e-4), -0.5 / (np.sqrt(0.5) + 1e-4)])


def test_identical_replicates_have_zero_cv_and_jaccard_one():
    a = step_arrays(synthetic_rollouts(n_steps=1, n_prompts=4, group_size=4, n_tokens=25))
    (row,), _ = bootstrap_step(a, np.ones((5, len(a.reward)), dtype=int), top_k_ratios=(0.05,))
    assert row["cov_batch_cv"] == 0.0 and row["tau_cv"] == 0.0
    assert row["token_cv_median_low"] == pytest.approx(0.0, abs=1e-6)
    assert row["jaccard_full_mean"] == 1.0 and row["jaccard_pair_mean"] == 1.0
    assert row["spearman_mean"] == pytest.approx(1.0) and row["kendall_mean"] == pytest.approx(1.0)
    assert not row["flag_cv_gt30"]


@pytest.mark.parametrize("mode", ["responses", "groups"])
def test_vectorised_matches_plain_loop(mode):
    a = step_arrays(synthetic_rollouts(n_steps=1, n_prompts=5, group_size=4, n_tokens=30, seed=2))
    counts = resample_counts(a.group, 8, mode, np.random.default_rng(0))
    (row,), _ = bootstrap_step(a, counts, top_k_ratios=(0.02,))
    c = np.vstack([np.ones(len(a.reward)), counts])
    adv = group_advantages(a.reward, a.group, c)
    ref = [reference_replicate(a, c[r], adv[r], top_k_ratio=0.02) for r in range(len(c))]
    cov = np.array([x["cov_batch"] for x in ref])
    jac = [len(x["selected"] & ref[0]["selected"]) / len(x["selected"] | ref[0]["selected"]) for x in ref[1:]]
    assert row["cov_batch"] == pytest.approx(cov[0])
    assert row["cov_batch_cv"] == pytest.approx(np.std(cov[1:], ddof=1) / abs(cov[1:].mean()), rel=1e-6)
    assert row["jaccard_full_mean"] == pytest.approx(np.mean(jac))


def test_resample_counts_keep_group_sizes():
    group = np.array([0, 0, 0, 1, 1, 2])
    c = resample_counts(group, 50, "responses", np.random.default_rng(0))
    assert (c[:, :3].sum(1) == 3).all() and (c[:, 3:5].sum(1) == 2).all() and (c[:, 5] == 1).all()
    cg = resample_counts(group, 50, "groups", np.random.default_rng(0))
    assert (cg[:, 0] == cg[:, 1]).all() and (cg[:, 3] == cg[:, 4]).all()  # whole groups move together
    with pytest.raises(ValueError, match="resample"):
        resample_counts(group, 5, "tokens", np.random.default_rng(0))


def test_ema_zero_equals_raw():
    df = synthetic_rollouts(n_steps=2, n_prompts=4, group_size=4, n_tokens=20)
    state = None
    for step in (0, 1):
        a = step_arrays(df[df["step"] == step])
        counts = resample_counts(a.group, 20, "responses", np.random.default_rng(step))
        (row,), state = bootstrap_step(a, counts, ema=0.0, ema_state=state, top_k_ratios=(0.05,))
    assert row["tau_ema_cv"] == pytest.approx(row["tau_cv"])
    assert row["jaccard_ema_full_mean"] == pytest.approx(row["jaccard_full_mean"])


def test_schema_violation_names_the_column(tmp_path):
    df = synthetic_rollouts(n_steps=1)
    with pytest.raises(RolloutSchemaError, match="entropy"):
        validate_rollouts(df.drop(columns=["entropy"]))
    with pytest.raises(RolloutSchemaError, match="reward"):
        validate_rollouts(df.assign(reward="high"))
    run = write_run(tmp_path, df.drop(columns=["advantage"]))
    with pytest.raises(ValueError, match="advantage"):
        read_rollouts(run)


def test_cli_bootstrap(tmp_path):
    run = write_run(tmp_path, synthetic_rollouts(n_steps=2, n_prompts=4, group_size=4, n_tokens=20))
    assert analyze.main(["bootstrap", "--rollouts", str(run), "--B", "30", "--top-k-ratio", "0.01", "0.1"]) == 0
    out = tmp_path / "analysis" / "bootstrap" / "demo_seed0"
    res = pd.read_parquet(out / "bootstrap.parquet")
    assert len(res) == 4  # 2 steps x 2 top-k ratios
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"settings", "top_k_ratio=0.01", "top_k_ratio=0.1"}
    assert (out / "bootstrap_stability.png").exists() and (out / "bootstrap_stability.pdf").exists()


def test_cli_missing_rollouts_names_command(tmp_path):
    with pytest.raises(MissingArtifactError, match="sent train"):
        analyze.main(["bootstrap", "--rollouts", str(tmp_path / "nope")])
