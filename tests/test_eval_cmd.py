"""`sent eval` and `sent semantic-entropy` end to end on a tiny random model (CPU, seconds)."""

import json

import pandas as pd
import pytest

from sent.commands import eval as eval_cmd
from sent.commands import semantic_entropy as se_cmd
from sent.io import read_parquet_metadata


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    from _tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


EVAL_ARGS = ["--k", "4", "--max-new-tokens", "5", "--n-problems", "3", "--chunk-size", "2", "--threads", "1"]


def test_eval_writes_tables_and_summary(tiny_path, tmp_path):
    out = tmp_path / "eval"
    assert eval_cmd.main(["--model", tiny_path, "--out", str(out), "--suites", "toy-aime24,math500",
                          "--source-dir", "fixtures", *EVAL_ARGS]) == 0
    table = pd.read_parquet(out / "math500.parquet")
    assert list(table.columns) == eval_cmd.EVAL_COLUMNS
    assert len(table) == 3 * 4  # 3 problems x k=4
    assert table["gold"].tolist()[:4] == ["\\frac{3}{4}"] * 4  # the fixture's first gold answer
    assert table.groupby("prompt_id")["sample_id"].apply(sorted).tolist() == [[0, 1, 2, 3]] * 3
    assert (table["length"] <= 5).all()
    meta = read_parquet_metadata(out / "math500.parquet")
    assert (meta["k"], meta["temperature"], meta["top_p"], meta["seed"]) == (4, 1.0, 0.9, 0)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"toy-aime24", "math500"}
    assert {"pass@1", "pass@1_any", "avg@1", "pass@4", "avg@4"} <= set(summary["math500"])
    assert "pass@8" not in summary["math500"]  # only k' <= k


def test_eval_skips_complete_suite(tiny_path, tmp_path, monkeypatch):
    args = ["--model", tiny_path, "--out", str(tmp_path), "--suites", "minerva", "--source-dir", "fixtures", *EVAL_ARGS]
    eval_cmd.main(args)
    monkeypatch.setattr(eval_cmd, "open_model", lambda a: pytest.fail("complete suite was recomputed"))
    assert eval_cmd.main(args) == 0


def test_summarize_literal():
    # 2 problems x 4 samples: p0 correct at samples 2 and 3, p1 never; one sample with unusable gold (None).
    table = pd.DataFrame({
        "prompt_id": ["p0"] * 4 + ["p1"] * 4, "sample_id": [0, 1, 2, 3] * 2,
        "correct": pd.array([False, False, True, True, False, False, False, None], dtype="boolean"),
        "length": [1] * 8})
    s = eval_cmd.summarize(table, k=4)
    assert s["avg@4"] == pytest.approx(2 / 8)
    assert s["pass@1_any"] == 0.0  # first sample of each problem is wrong
    assert s["pass@1"] == pytest.approx((2 / 4 + 0) / 2)  # unbiased: c/n per problem
    assert s["pass@4"] == pytest.approx(0.5) and s["pass@4_any"] == pytest.approx(0.5)
    assert s["unusable_gold_samples"] == 1


def test_eval_unknown_suite():
    with pytest.raises(ValueError, match="unknown"):
        eval_cmd.expand_suites("toy-aime24,gsm8k")
    assert eval_cmd.expand_suites("paper") == ["aime24", "aime25", "amc23", "math500", "olympiad", "minerva"]


SE_ARGS = ["--n-prompts", "4", "--M", "3", "--max-new-tokens", "5", "--chunk-size", "2", "--num-proc", "1",
           "--template", "Q: {problem} A:", "--threads", "1"]


def test_semantic_entropy_writes_both_tables(tiny_path, tmp_path):
    assert se_cmd.main(["--root", str(tmp_path), "--model", tiny_path, *SE_ARGS]) == 0
    se = pd.read_parquet(tmp_path / "se" / "math.parquet")
    samples = pd.read_parquet(tmp_path / "se" / "math_samples.parquet")
    assert list(se.columns) == se_cmd.SE_COLUMNS and len(se) == 4
    assert list(samples.columns) == se_cmd.SAMPLE_COLUMNS and len(samples) == 4 * 3
    assert (se["n_samples"] == 3).all()
    # discrete SE of 3 answers lies in [0, log 3]; n_clusters in 1..3
    assert se["se"].between(0, 1.0987).all() and se["n_clusters"].between(1, 3).all()
    meta = read_parquet_metadata(tmp_path / "se" / "math.parquet")
    assert (meta["M"], meta["temperature"], meta["model"], meta["seed"]) == (3, 1.0, tiny_path, 0)
    assert not (tmp_path / "se" / ".parts_math").exists()  # parts removed once assembled


def test_semantic_entropy_resumes_after_kill(tiny_path, tmp_path, monkeypatch):
    import sent.generation as gen

    real = gen.sample_completions
    calls = []

    def dies_on_second_chunk(*a, **kw):
        calls.append(kw["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed while sampling chunk 1
        return real(*a, **kw)

    monkeypatch.setattr(gen, "sample_completions", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        se_cmd.main(["--root", str(tmp_path), "--model", tiny_path, *SE_ARGS])
    parts = tmp_path / "se" / ".parts_math"
    assert sorted(p.name for p in parts.glob("*.parquet")) == ["part_00000.samples.parquet", "part_00000.se.parquet"]
    assert not (tmp_path / "se" / "math.parquet").exists()
    chunk0 = pd.read_parquet(parts / "part_00000.samples.parquet")

    calls.clear()
    monkeypatch.setattr(gen, "sample_completions", lambda *a, **kw: calls.append(kw["seed"]) or real(*a, **kw))
    se_cmd.main(["--root", str(tmp_path), "--model", tiny_path, *SE_ARGS])
    assert calls == [1]  # only chunk 1 was sampled again (seed = 0 * 100003 + chunk index)
    samples = pd.read_parquet(tmp_path / "se" / "math_samples.parquet")
    pd.testing.assert_frame_equal(samples.head(len(chunk0)), chunk0)  # chunk 0 reused as it was
    assert len(samples) == 12


def test_semantic_entropy_on_benchmark_fixture(tiny_path, tmp_path):
    se_cmd.main(["--root", str(tmp_path), "--model", tiny_path, "--dataset", "dapo", "--source", "fixture",
                 "--domain", "dapo", *SE_ARGS])
    se = pd.read_parquet(tmp_path / "se" / "dapo.parquet")
    assert se["prompt_id"].tolist() == ["dapo-fx-0001", "dapo-fx-0002", "dapo-fx-0003"]
    assert se["answer"].tolist() == ["7", "32", "6"]


def test_eval_scores_correct_answers(tiny_path, tmp_path, monkeypatch):
    """A sampler that answers every other sample with the gold answer gives Avg@4 = 0.5 and Pass@1_any = 1."""
    import sent.generation as gen
    from sent.data.benchmarks import load_benchmark

    golds = load_benchmark("aime25", "fixture")["answer"].tolist()  # ["56", "10", "625"]
    by_prompt = {f"Q: {p} A:": g for p, g in zip(load_benchmark("aime25", "fixture")["problem"], golds)}

    def oracle(model, tok, prompts, n, **kw):
        return [[gen.Sample(f"so \\boxed{{{by_prompt[p] if j % 2 == 0 else 'nope'}}}", [1], -1.0, 1)
                 for j in range(n)] for p in prompts]

    monkeypatch.setattr(gen, "sample_completions", oracle)
    eval_cmd.main(["--model", tiny_path, "--out", str(tmp_path), "--suites", "aime25", "--source-dir", "fixtures",
                   "--template", "Q: {problem} A:", *EVAL_ARGS])
    table = pd.read_parquet(tmp_path / "aime25.parquet")
    assert table["correct"].tolist() == [True, False] * 6
    assert table["answer"].tolist()[:2] == ["56", "nope"]
    summary = json.loads((tmp_path / "summary.json").read_text())["aime25"]
    assert summary["avg@4"] == 0.5 and summary["pass@1_any"] == 1.0 and summary["pass@4"] == 1.0
