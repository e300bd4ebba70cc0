"""Inputs that cannot work are refused in one line: prompts beyond the model's positions, text that is not UTF-8."""

from __future__ import annotations

import json

import pytest

from sent.artifacts import read_jsonl, read_text
from sent.cli import main as sent_main
from sent.data.benchmarks import FIXTURES_DIR, load_benchmark
from tests._tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")  # 1024 positions


def _one_line(capsys, argv):
    capsys.readouterr()
    rc = sent_main(argv)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip() and "Loading weights" not in x]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_prompts_beyond_the_context_are_refused_with_a_count(tiny, tmp_path, capsys):
    line = _one_line(capsys, ["eval", "--model", str(tiny), "--out", str(tmp_path / "ev"), "--suites", "toy",
                              "--n-problems", "2", "--k", "1", "--max-new-tokens", "1020"])
    assert line.startswith("sent eval: ") and "prompts do not fit the model's 1024 positions" in line
    assert "max_new_tokens=1020" in line and "longest:" in line
    assert not list((tmp_path / "ev").rglob("*.parquet"))  # refused before any sampling


def test_text_that_is_not_utf8_names_file_line_and_byte(tmp_path):
    bad = tmp_path / "rows.jsonl"
    bad.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')  # latin-1 e-acute on line 2
    with pytest.raises(ValueError, match=r"rows.jsonl: not UTF-8 text \(line 2, byte 11"):
        read_text(bad)
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(bad)
    good = tmp_path / "ok.jsonl"
    good.write_text('{"b": "café"}\n', encoding="utf-8")
    assert read_jsonl(good) == [{"b": "café"}]


def test_a_benchmark_file_in_another_encoding_or_with_a_bad_line_is_refused(tmp_path):
    rows = [json.loads(x) for x in (FIXTURES_DIR / "math500.jsonl").read_text().splitlines() if x.strip()]
    latin = tmp_path / "math500.jsonl"
    latin.write_bytes("\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8") + b"\n\xff\n")
    with pytest.raises(ValueError, match=r"math500.jsonl: not UTF-8 text \(line 4"):
        load_benchmark("math500", latin)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rows[0]) + "\n{oops\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(ValueError, match=r"broken.jsonl: line 2 is not JSON"):
        load_benchmark("math500", broken)
