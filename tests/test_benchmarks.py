"""sent.data.benchmarks: hand-made fixtures in each hub schema load into the common problem schema."""

import json

import pandas as pd
import pytest

from sent.data.benchmarks import (
    BENCHMARKS,
    FIXTURES_DIR,
    PAPER_SUITES,
    SCHEMA,
    find_source,
    load_benchmark,
    load_champ,
    paper_prompt,
    render_paper_prompts,
)


@pytest.mark.parametrize("name", sorted(BENCHMARKS) + ["champ"])
def test_fixture_loads_into_common_schema(name):
    df = load_benchmark(name, "fixture")
    assert list(df.columns) == list(SCHEMA)
    assert len(df) == 3
    assert df["prompt_id"].is_unique
    assert (df["domain"] == "math").all()
    assert df["problem"].str.len().gt(0).all() and df["answer"].str.len().gt(0).all()


def test_field_mappings_literal():
    math500 = load_benchmark("math500", "fixture")
    assert math500["level"].tolist() == [1, 2, 3]  # MATH-500 carries levels 1-5
    assert math500.loc[0, "answer"] == "\\frac{3}{4}"
    assert load_benchmark("aime24", "fixture")["prompt_id"].tolist() == ["aime24-000", "aime24-001", "aime24-002"]
    assert load_benchmark("amc23", "fixture")["answer"].tolist() == ["12", "12", "2.5"]  # floats 12.0 -> "12"
    olymp = load_benchmark("olympiad", "fixture")
    assert olymp["answer"].tolist() == ["3, -3", "5", "12"]  # list answers joined, $ stripped
    assert olymp.loc[1, "problem"] == "Let $f(x) = x^2 + 1$.\nCompute $f(2)$."  # context prepended
    dapo = load_benchmark("dapo", "fixture")
    assert dapo["problem"].tolist() == ["What is $3 + 4$?", "Compute $2^5$.",
                                        "How many positive divisors does $12$ have?"]  # template stripped, deduped
    assert dapo["prompt_id"].tolist() == ["dapo-fx-0001", "dapo-fx-0002", "dapo-fx-0003"]
    assert load_champ("fixture")["answer"].tolist() == ["23", "1", "6"]


def test_parquet_source_with_nested_fields(tmp_path):
    raw = pd.DataFrame([json.loads(line) for line in (FIXTURES_DIR / "dapo_math_17k.jsonl").read_text().splitlines()])
    raw.to_parquet(tmp_path / "dapo.parquet")
    df = load_benchmark("dapo", tmp_path / "dapo.parquet")
    assert df["answer"].tolist() == ["7", "32", "6"]


@pytest.mark.parametrize("name,field", [("math500", "level"), ("amc23", "question"), ("olympiad", "final_answer")])
def test_missing_field_names_field_and_dataset(tmp_path, name, field):
    raw = pd.DataFrame([json.loads(line) for line in BENCHMARKS[name].fixture_path().read_text().splitlines()])
    raw.drop(columns=[field]).to_json(tmp_path / "bad.jsonl", orient="records", lines=True)
    with pytest.raises(ValueError, match=field) as err:
        load_benchmark(name, tmp_path / "bad.jsonl")
    assert BENCHMARKS[name].hub_id in str(err.value)


def test_missing_struct_field_in_dapo(tmp_path):
    row = {"prompt": [{"content": "x", "role": "user"}], "reward_model": {"style": "rule"}}
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="ground_truth"):
        load_benchmark("dapo", tmp_path / "bad.jsonl")


def test_champ_missing_field(tmp_path):
    (tmp_path / "v0.json").write_text(json.dumps({"problems": {"P_1": {"identifier": "P_1", "_text": "q"}}}))
    with pytest.raises(ValueError, match="_answer"):
        load_champ(tmp_path / "v0.json")


def test_no_source_and_no_download_is_an_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(ValueError, match="allow_download"):
        load_benchmark("aime24")


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="valid names"):
        load_benchmark("gsm8k", "fixture")


def test_paper_suites_and_prompt():
    assert set(PAPER_SUITES) <= set(BENCHMARKS) and len(PAPER_SUITES) == 6
    assert paper_prompt("1+1?") == "1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."
    df = render_paper_prompts(load_benchmark("minerva", "fixture"))  # no tokenizer -> plain template
    assert df["prompt"][0].endswith("within \\boxed{}.")


def test_find_source_uses_fixture_names():
    assert find_source("dapo", FIXTURES_DIR).name == "dapo_math_17k.jsonl"
    assert find_source("champ", FIXTURES_DIR).name == "champ_v0.json"
    with pytest.raises(FileNotFoundError):
        find_source("aime24", FIXTURES_DIR / "nowhere")


def test_champ_without_package_names_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "champ_dataset" else real(n, *a))
    with pytest.raises(ImportError, match=r"pip install champ-dataset==1\.0\.0"):
        load_champ()
