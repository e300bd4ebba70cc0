"""Cross-domain SE: Spearman with bootstrap CI on hand cases, and the CLI on a tmp root."""

import json

import numpy as np
import pandas as pd
import pytest

from sent.commands import analyze
from sent.io import MissingArtifactError, atomic_write_parquet
from sent_analysis.cross_domain import se_difficulty, spearman_bootstrap


def test_spearman_hand_cases():
    assert spearman_bootstrap([1, 2, 3, 4], [10, 20, 30, 40], B=50)["rho"] == pytest.approx(1.0)
    assert spearman_bootstrap([1, 2, 3, 4], [4, 3, 2, 1], B=50)["rho"] == pytest.approx(-1.0)
    # d = [0, 1, 1, 0]: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman_bootstrap([1, 2, 3, 4], [1, 3, 2, 4], B=50)["rho"] == pytest.approx(0.8)
    # ties -> mid-ranks: x ranks [1.5, 1.5, 3], y ranks [1, 2, 3]; Pearson = 0.8660
    assert spearman_bootstrap([0, 0, 1], [1, 2, 3], B=50)["rho"] == pytest.approx(np.sqrt(3) / 2)


def test_spearman_ci_brackets_rho_and_handles_short_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    res = spearman_bootstrap(x, x + rng.normal(size=200), B=500)
    assert res["ci_low"] < res["rho"] < res["ci_high"] and res["n"] == 200
    assert np.isnan(spearman_bootstrap([1, 2], [1, 2])["rho"])
    with pytest.raises(ValueError, match="equal length"):
        spearman_bootstrap([1, 2, 3], [1, 2])


def _se_table(n, seed, domain, level_known=True):
    rng = np.random.default_rng(seed)
    se = rng.gamma(1.0, 0.5, n)
    acc = np.clip(1 - se / se.max() + rng.normal(0, 0.1, n), 0, 1)
    return pd.DataFrame({"prompt_id": [f"{domain}-{i}" for i in range(n)], "se": se, "se_weighted": np.nan,
                         "accuracy": acc, "level": rng.integers(1, 4, n) if level_known else -1, "domain": domain})


def test_se_difficulty_rows():
    corr = se_difficulty({"relations": _se_table(30, 0, "relations", level_known=False), "math": _se_table(30, 1, "math")}, B=100)
    assert set(zip(corr["domain"], corr["target"])) == {("relations", "error_rate"), ("math", "error_rate"), ("math", "level")}
    assert (corr.loc[corr["target"] == "error_rate", "rho"] > 0.5).all()  # built so that SE tracks error


def test_cli_cross_domain(tmp_path):
    with pytest.raises(MissingArtifactError, match="sent semantic-entropy"):
        analyze.main(["cross-domain", "--root", str(tmp_path)])
    for i, d in enumerate(["relations", "math"]):
        atomic_write_parquet(tmp_path / "se" / f"{d}.parquet", _se_table(25, i, d))
    assert analyze.main(["cross-domain", "--root", str(tmp_path), "--B", "100"]) == 0
    out = tmp_path / "analysis" / "cross_domain"
    corr = pd.read_parquet(out / "se_difficulty.parquet")
    assert len(corr) == 4  # 2 domains x (error_rate, level)
    summary = json.loads((out / "summary.json").read_text())
    assert any("run_all.sh" in note and "xd_sent" in note for note in summary["training"]["missing"])
    assert (out / "cross_domain_se.png").exists() and (out / "cross_domain_se.pdf").exists()
