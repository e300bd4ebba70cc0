"""End to end: the smoke profile of run_all (base model, SE, curriculum, training, eval, analyses, every notebook)
on real artifacts it makes itself, offline. This is the CI check that every notebook runs on real smoke artifacts."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    out = tmp_path_factory.mktemp("out")
    cmd = [sys.executable, str(REPO / "reproduce" / "pipeline.py"), "--profile", "smoke", "--root", str(root),
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root, out, proc.stdout


def test_every_step_ran_and_every_notebook_executed(smoke):
    root, out, log = smoke
    profile = yaml.safe_load((REPO / "reproduce" / "profiles" / "smoke.yaml").read_text())
    for nb in profile["notebooks"]:
        assert (out / "notebooks" / nb).exists(), f"{nb} was not executed"
    for run in profile["runs"]:
        run_dir = root / "runs" / run / "seed0"
        assert (run_dir / "DONE").exists() and (run_dir / "final" / "config.json").exists()
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == list(range(1, len(metrics) + 1)), "steps lost or duplicated"
        opts = profile["runs"][run] or {}
        if opts.get("curriculum"):  # each stage was its own training, numbered on from the last
            n_stages = profile["curricula"][opts["curriculum"]]["n_stages"]
            steps = [int((run_dir / f"stage{k}" / "DONE").read_text().split()[1]) for k in range(1, n_stages + 1)]
            assert sum(steps) == len(metrics) and sorted({m["stage"] for m in metrics}) == list(range(1, n_stages + 1))
        assert (run_dir / "eval" / "summary.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["figures"]) >= 10 and len(summary["tables"]) >= 10


def test_tables_come_from_the_runs(smoke):
    """Our cells of Table I are recomputed from the runs' eval parquet files (percent, unbiased Pass@k)."""
    from sent.metrics import pass_at_k

    root, out, _ = smoke
    table = pd.read_csv(out / "tables" / "table1_pass_at_k_ours_long.csv")
    for run in ("base", "grpo", "sent"):
        folder = root / "eval" / "base" if run == "base" else root / "runs" / run / "seed0" / "eval"
        ev = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))])
        for suite, rows in ev.groupby("suite"):
            per_problem = rows.groupby("prompt_id")["correct"].agg(["size", "sum"])
            expected = 100 * pass_at_k(per_problem["size"].to_numpy(), per_problem["sum"].to_numpy(), 8).mean()
            cell = table[(table.run == run) & (table.suite == suite) & (table.k == 8)]
            assert len(cell) == 1, (run, suite)
            assert cell["mean"].iloc[0] == pytest.approx(expected, abs=1e-6), (run, suite)


def test_rerun_skips_finished_work(smoke):
    root, out, _ = smoke
    cmd = [sys.executable, str(REPO / "reproduce" / "pipeline.py"), "--profile", "smoke", "--root", str(root),
           "--out", str(out), "--only", "base", "se", "curriculum", "train", "eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ok in" not in proc.stdout, "a finished step ran again:\n" + proc.stdout
    assert proc.stdout.count("skipped (done)") >= 10


def test_smoke_runs_learn(smoke):
    """The smoke base solves some easy problems, so RL is exercised: GRPO gets reward and gradient, and SENT's gates
    pick high-covariance tokens whose covariance is not zero (a base with pass@1 0 gives all-zero advantages)."""
    root, out, _ = smoke
    assert "| GRPO (`grpo`) |" in (out / "tables" / "results.md").read_text()  # the interval table (sent.results)

    def metrics(run):
        return [json.loads(line) for line in (root / "runs" / run / "seed0" / "metrics.jsonl").read_text().splitlines()]

    grpo = metrics("grpo")
    assert max(m.get("reward") or 0.0 for m in grpo) > 0, "no GRPO step got a reward"
    assert max(m["grad_norm"] for m in grpo) > 0, "GRPO never had a gradient"
    assert min(m["frac_reward_zero_std"] for m in grpo if "frac_reward_zero_std" in m) < 1
    sent = metrics("sent")
    assert max(m["share/high_cov"] for m in sent) > 0
    assert max(abs(m["cov/max"]) for m in sent) > 0, "SENT's high-covariance tokens all had covariance 0"
    base = json.loads((root / "base" / "base_report.json").read_text())
    assert base["pass@1"] > 0
