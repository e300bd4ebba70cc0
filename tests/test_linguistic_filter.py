"""Class shares of token sets on a hand case, and the CLI (the classes themselves: tests/test_tokens.py)."""

import json

import numpy as np
import pandas as pd
import pytest

from sent.commands import analyze
from sent.io import atomic_write_parquet
from sent_analysis.covariance_bootstrap import synthetic_rollouts
from sent_analysis.linguistic_filter import class_shares, token_sets


def test_class_shares_hand_case():
    df = pd.DataFrame({
        "step": [0], "prompt_id": ["p"], "sample_id": [0], "reward": [1.0], "advantage": [0.5],
        "tokens": [["Ġthe", "Ġcat", ",", "Ġ3"]], "logp": [[-0.1, -0.2, -0.3, -0.4]],
        "entropy": [[0.1, 0.2, 0.3, 0.9]],
        "low_entropy": [[True, True, True, False]], "high_cov": [[True, False, False, False]],
    })
    tok = token_sets(df)
    assert tok.attrs["sets"] == "recorded"
    sh = class_shares(tok).set_index(["step", "set", "category"])
    # low-entropy set {the, cat, ","}: function 1/3, content 1/3, punctuation 1/3, number 0
    assert sh.loc[(0, "low_entropy", "function"), "share"] == pytest.approx(1 / 3)
    assert sh.loc[(0, "low_entropy", "number"), "share"] == 0
    # high-cov set {the}: function 1; all tokens: function 1/4 -> enrichment 4
    assert sh.loc[(0, "high_cov", "function"), "share"] == 1.0
    assert sh.loc[(0, "high_cov", "function"), "enrichment"] == pytest.approx(4.0)


def test_token_sets_recomputed_when_not_recorded():
    df = synthetic_rollouts(n_steps=2, n_prompts=2, group_size=2, n_tokens=10)  # 40 tokens per step
    tok = token_sets(df, low_entropy_ratio=0.5, top_k_ratio=0.1)
    assert tok.attrs["sets"] == "recomputed"
    per = tok.groupby("step")[["low_entropy", "high_cov"]].sum()
    assert (per["low_entropy"] == 20).all() and (per["high_cov"] == 2).all()  # int(0.5*40), int(0.1*20)
    assert not (tok["high_cov"] & ~tok["low_entropy"]).any()


def _run(root, name, df, entropy):
    folder = root / "runs" / name / "seed0"
    atomic_write_parquet(folder / "rollouts" / "step_000000.parquet", df)
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "entropy/all": e, "entropy/low": e / 2}) + "\n" for s, e in enumerate(entropy)))
    ev = pd.DataFrame({"prompt_id": ["a"] * 4 + ["b"] * 4, "suite": "toy", "sample_id": list(range(4)) * 2,
                       "correct": [True, False, False, False, False, False, False, False]})
    atomic_write_parquet(folder / "eval" / "toy.parquet", ev)
    return folder


def test_cli_linguistic_with_compare(tmp_path):
    df = synthetic_rollouts(n_steps=1, n_prompts=2, group_size=2, n_tokens=10)
    df["tokens"] = [["Ġthe", "Ġsum", ",", "Ġ3", "Ġis"] * 2] * len(df)
    run = _run(tmp_path, "sent", df, [0.5, 0.4])
    other = _run(tmp_path, "sent_content", df, [0.5, 0.45])
    assert analyze.main(["linguistic", "--rollouts", str(run), "--compare-run", str(other)]) == 0
    out = tmp_path / "analysis" / "linguistic" / "sent_seed0"
    shares = pd.read_parquet(out / "class_shares.parquet")
    pooled_all = shares[(shares["step"] == -1) & (shares["set"] == "all")].set_index("category")["share"]
    assert pooled_all["function"] == pytest.approx(0.4)  # "the", "is" out of 5
    passk = pd.read_parquet(out / "compare_passk.parquet")
    # pass@1 = mean(1/4, 0) = 0.125 for both runs
    assert np.allclose(passk[passk["k"] == 1]["pass_at_k"], 0.125)
    assert (out / "compare_sent_content.png").exists() and (out / "linguistic_shares.pdf").exists()
    assert json.loads((out / "summary.json").read_text())["compare"]["notes"] == []
