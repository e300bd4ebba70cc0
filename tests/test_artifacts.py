"""sent.artifacts: run/root paths, run discovery, the JSON-lines tolerance rule, readers, figures, analyze defaults."""

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from sent.artifacts import (
    RootPaths,
    RunPaths,
    eval_pass_at_k,
    iter_runs,
    read_done,
    read_eval_file,
    read_jsonl,
    read_metrics,
    read_rollouts,
    read_run_config,
    read_se_table,
    rollout_steps,
    rollouts_dir,
    run_dir_of,
    save_figure,
    truncate_jsonl,
    write_done,
)
from sent.io import MissingArtifactError, atomic_write_parquet
from sent.rollouts import RolloutRecorder, RolloutSchemaError


def test_run_paths_layout():
    p = RunPaths("/r", "sent", 3)
    assert p.dir == Path("/r/runs/sent/seed3") and p.name == "sent/seed3"
    assert p.config == Path("/r/runs/sent/seed3/config.yaml")
    assert p.metrics == Path("/r/runs/sent/seed3/metrics.jsonl")
    assert p.rollouts == Path("/r/runs/sent/seed3/rollouts")
    assert p.rollout_file(12) == Path("/r/runs/sent/seed3/rollouts/step_000012.parquet")
    assert p.eval_dir == Path("/r/runs/sent/seed3/eval")
    assert p.eval_file("aime24") == Path("/r/runs/sent/seed3/eval/aime24.parquet")
    assert p.final == Path("/r/runs/sent/seed3/final") and p.done == Path("/r/runs/sent/seed3/DONE")
    assert p.stage_dir(2) == Path("/r/runs/sent/seed3/stage2")
    assert p.recipe == Path("/r/recipes/sent-seed3.yaml")
    assert p.analysis("bootstrap") == Path("/r/analysis/bootstrap/sent_seed3")
    with pytest.raises(ValueError, match="seed"):
        RunPaths("/r", "sent", -1)
    with pytest.raises(ValueError, match="seed"):
        RunPaths("/r", "sent", "0")


def test_root_paths_layout():
    r = RootPaths("/r")
    assert r.base == Path("/r/base") and r.base_eval == Path("/r/eval/base") and r.runs == Path("/r/runs")
    assert r.se("math") == Path("/r/se/math.parquet") and r.se_samples("math") == Path("/r/se/math_samples.parquet")
    assert r.curriculum("math3") == Path("/r/curriculum/math3") and r.curricula == Path("/r/curriculum")
    assert r.recipe("grpo", 1) == Path("/r/recipes/grpo-seed1.yaml")
    assert r.analysis("cross_domain") == Path("/r/analysis/cross_domain")
    assert r.run("grpo", 1) == RunPaths("/r", "grpo", 1)


def test_from_dir_parses_run_folders_only():
    assert RunPaths.from_dir("/a/b/runs/sent_content/seed12") == RunPaths("/a/b", "sent_content", 12)
    rel = RunPaths.from_dir("runs/grpo/seed0")  # relative paths stay relative
    assert rel is not None and rel.dir == Path("runs/grpo/seed0")
    for other in ("/a/runs/sent/seed0/rollouts", "/a/sent/seed0", "/a/runs/sent/seedx", "/a/runs/sent/seed01",
                  "/a/runs/sent"):
        assert RunPaths.from_dir(other) is None, other
    with pytest.raises(ValueError, match="not a run folder"):
        RunPaths.from_dir("/a/sent/seed0", strict=True)


def test_iter_runs_lists_existing_run_seeds_in_order(tmp_path):
    assert iter_runs(tmp_path) == []
    for rel in ("runs/sent/seed10", "runs/sent/seed2", "runs/grpo/seed0", "runs/grpo/seedx", "runs/grpo/notes"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "runs" / "grpo" / "seed1").write_text("a file, not a run")
    (tmp_path / "runs" / "README").write_text("")
    found = [(r.run, r.seed) for r in iter_runs(tmp_path)]
    assert found == [("grpo", 0), ("sent", 2), ("sent", 10)]  # seeds numeric, not "10" < "2"
    assert [r.seed for r in iter_runs(tmp_path, runs=["sent"])] == [2, 10]
    assert iter_runs(tmp_path, runs=["nope"]) == []


def test_jsonl_torn_last_line_is_skipped_with_warning(tmp_path, caplog):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "x": 0.5}\n{"step": 2, "x": 0.25}\n\n{"step": 3, "x"')
    with caplog.at_level(logging.WARNING, logger="sent.artifacts"):
        assert read_jsonl(f) == [{"step": 1, "x": 0.5}, {"step": 2, "x": 0.25}]
    assert "incomplete last line 4" in caplog.text
    df = read_metrics(tmp_path)  # a run folder works too
    assert df["step"].tolist() == [1, 2] and df["x"].tolist() == [0.5, 0.25]
    assert read_metrics(tmp_path / "missing") is None


def test_jsonl_bad_line_in_the_middle_is_an_error(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 is not JSON"):
        read_jsonl(f)
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(f)


def test_truncate_jsonl_keeps_lines_verbatim_and_drops_torn_tail(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "v": 1.0}\n{"step":2}\n{"step": 3}\n{"step": 4, "v"')
    truncate_jsonl(f, 2)
    assert f.read_text() == '{"step": 1, "v": 1.0}\n{"step":2}\n'
    truncate_jsonl(tmp_path / "absent.jsonl", 1)  # nothing to do
    assert not (tmp_path / "absent.jsonl").exists()


def test_done_marker_round_trip(tmp_path):
    assert read_done(tmp_path) is None
    path = write_done(tmp_path / "stage1", 84)
    assert path.read_text() == "step 84\n" and read_done(tmp_path / "stage1") == 84


def _row(step, n=2):
    return {"step": step, "prompt_id": "p0", "sample_id": 0, "stage": 1, "reward": 1.0, "advantage": 0.5,
            "token_ids": list(range(n)), "tokens": ["a"] * n, "logp": [-0.1] * n, "entropy": [0.2] * n,
            "covariance": [0.0] * n, "low_entropy": [True] * n, "high_cov": [False] * n, "beta": [0.0] * n}


def test_rollout_reader_accepts_run_or_rollouts_folder(tmp_path):
    run = RunPaths(tmp_path, "sent", 0)
    rec = RolloutRecorder(run.rollouts)
    for step in (3, 1, 2):
        rec.write_step(step, [_row(step)])
    assert rollout_steps(run.dir) == rollout_steps(run.rollouts) == [1, 2, 3]
    assert rollouts_dir(run.dir) == run.rollouts and run_dir_of(run.rollouts) == run.dir
    assert read_rollouts(run.dir)["step"].tolist() == [1, 2, 3]
    assert read_rollouts(run.rollouts, steps=[2])["step"].tolist() == [2]
    with pytest.raises(MissingArtifactError, match=r"step_000009\.parquet.*sent train"):
        read_rollouts(run.dir, steps=[9])
    with pytest.raises(MissingArtifactError, match="--only train"):
        read_rollouts(tmp_path / "empty", command="bash reproduce/run_all.sh --profile cpu --only train")
    atomic_write_parquet(run.rollout_file(4), pd.DataFrame([_row(4)]).assign(reward="high"))
    with pytest.raises(RolloutSchemaError, match="reward"):
        read_rollouts(run.dir)


def test_eval_reader_and_pass_at_k(tmp_path):
    run = RunPaths(tmp_path, "grpo", 0)
    ev = pd.DataFrame({"prompt_id": ["a"] * 4 + ["b"] * 4, "sample_id": list(range(4)) * 2,
                       "correct": [True, False, False, False] + [False] * 4})
    atomic_write_parquet(run.eval_file("toy"), ev)
    df = read_eval_file(run.eval_file("toy"))
    assert (df["suite"] == "toy").all() and len(df) == 8  # suite filled from the file name
    pk = eval_pass_at_k(run.dir, ks=(1, 4, 8))
    assert pk["k"].tolist() == [1, 4]  # k=8 > 4 samples per prompt: left out
    assert pk.loc[pk.k == 1, "pass_at_k"].item() == pytest.approx(0.125)  # mean(1/4, 0)
    assert pk.loc[pk.k == 4, "pass_at_k"].item() == pytest.approx(0.5)
    atomic_write_parquet(run.eval_file("bad"), ev.drop(columns=["sample_id"]))
    with pytest.raises(ValueError, match=r"bad\.parquet: eval parquet lacks columns \['sample_id'\]"):
        read_eval_file(run.eval_file("bad"))
    assert eval_pass_at_k(tmp_path / "no_run").empty


def test_se_table_and_run_config_readers(tmp_path):
    with pytest.raises(MissingArtifactError, match="sent semantic-entropy --root .* --domain relations"):
        read_se_table(tmp_path, "relations")
    atomic_write_parquet(RootPaths(tmp_path).se("math"), pd.DataFrame({"prompt_id": ["x"], "se": [0.5]}))
    assert read_se_table(tmp_path)["se"].tolist() == [0.5]
    run = RunPaths(tmp_path, "sent", 0)
    assert read_run_config(run.dir) is None
    run.dir.mkdir(parents=True)
    run.config.write_text("config: {method: sent, high_cov_ratio: 0.02}\n")
    assert read_run_config(run.dir)["config"]["high_cov_ratio"] == 0.02


def test_save_figure_writes_png_and_pdf(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, pdf = save_figure(fig, tmp_path / "sub" / "fig")
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    assert not plt.fignum_exists(fig.number)  # closed by default
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.pdf", "fig.png"]  # no temp files left


def test_analyze_ratios_default_to_the_run_config(tmp_path, caplog):
    from sent.commands import analyze
    from sent_analysis.covariance_bootstrap import synthetic_rollouts

    run = RunPaths(tmp_path, "sent", 0)
    df = synthetic_rollouts(n_steps=1, n_prompts=2, group_size=2, n_tokens=10)
    atomic_write_parquet(run.rollout_file(0), df)
    run.config.write_text(json.dumps({"config": {"method": "sent", "low_entropy_ratio": 0.7, "high_cov_ratio": 0.05}}))
    with caplog.at_level(logging.INFO, logger="sent.commands.analyze"):
        assert analyze.main(["bootstrap", "--rollouts", str(run.rollouts), "--B", "5", "--top-k-ratio", "run", "0.1"]) == 0
    summary = json.loads((run.analysis("bootstrap") / "summary.json").read_text())
    assert set(summary) >= {"top_k_ratio=0.05", "top_k_ratio=0.1"}
    settings = summary["settings"]
    assert settings["low_entropy_ratio"] == 0.7 and settings["top_k_ratio"] == [0.05, 0.1]
    assert "high_cov_ratio" in settings["sources"]["top_k_ratio"] and "--high-cov-ratio" in settings["sources"]["top_k_ratio"]
    assert "config.yaml: low_entropy_ratio" in settings["sources"]["low_entropy_ratio"]
    assert "low_entropy_ratio = 0.7" in caplog.text
    # an explicit flag wins; sent_release's fraction is release_kl_cov_ratio
    run.config.write_text("config: {method: sent_release, release_kl_cov_ratio: 0.03}\n")
    assert analyze.main(["linguistic", "--rollouts", str(run.dir), "--low-entropy-ratio", "0.5"]) == 0
    settings = json.loads((run.analysis("linguistic") / "summary.json").read_text())["settings"]
    assert settings["low_entropy_ratio"] == 0.5 and settings["sources"]["low_entropy_ratio"] == "--low-entropy-ratio"
    assert settings["top_k_ratio"] == 0.03 and "release_kl_cov_ratio" in settings["sources"]["top_k_ratio"]
    # nothing recorded: the trainer's defaults, said so
    run.config.unlink()
    values = analyze.run_gate_settings(run.dir)
    assert values["low_entropy_ratio"][0] == 0.8 and values["top_k_ratio"][0] == 0.0002
    assert "no config.yaml" in values["top_k_ratio"][1]
