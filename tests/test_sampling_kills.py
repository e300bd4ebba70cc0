"""SIGKILL `sent semantic-entropy` and `sent eval` at several moments; every rerun ends with the uninterrupted output.

Issue 13's must-show for the sampling commands (training has its own in tests/test_checkpoints.py). Each command
runs in a subprocess on the tiny random Llama with one prompt per part file, is killed when its k-th part file
appears (k = 1, 2, 3: between chunks, with a chunk half-sampled) or right after its last part (while the tables are
assembled), is rerun to completion, and its tables must equal those of a run that was never killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests._tiny import build_tiny_model


pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
N = 5  # prompts, one per part file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def _se_argv(tiny: str, root: Path) -> list[str]:
    return ["semantic-entropy", "--root", str(root), "--model", tiny, "--n-prompts", str(N), "--M", "3",
            "--max-new-tokens", "6", "--chunk-size", "1", "--num-proc", "1", "--template", "Q: {problem} A:",
            "--threads", "1"]


def _eval_argv(tiny: str, out: Path) -> list[str]:
    return ["eval", "--model", tiny, "--out", str(out), "--suites", "toy-aime24", "--k", "3", "--n-problems", str(N),
            "--max-new-tokens", "6", "--chunk-size", "1", "--template", "Q: {problem} A:", "--threads", "1"]


def _run(argv: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "sent.cli", *argv], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def _kill_when(argv: list[str], parts: Path, n_parts: int, extra_delay: float = 0.0) -> bool:
    """Start ``sent <argv>``, SIGKILL it once ``parts`` holds ``n_parts`` finished part files; True if killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sent.cli", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while proc.poll() is None and time.time() < deadline:
            if parts.exists() and len(list(parts.glob("part_*.parquet"))) >= n_parts:
                time.sleep(extra_delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.01)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def _assert_same(ref: dict[str, pd.DataFrame], got: dict[str, pd.DataFrame]) -> None:
    assert sorted(ref) == sorted(got)
    for name in ref:
        pd.testing.assert_frame_equal(ref[name], got[name], obj=name)


@pytest.mark.parametrize("command", ["semantic-entropy", "eval"])
def test_kill_at_many_moments_then_rerun_gives_the_uninterrupted_tables(tiny, tmp_path, command):
    def layout(base: Path):
        if command == "semantic-entropy":
            return _se_argv(tiny, base), base / "se" / ".parts_math", base / "se"
        return _eval_argv(tiny, base / "ev"), base / "ev" / ".parts_toy-aime24", base / "ev"

    argv, _, out = layout(tmp_path / "ref")
    _run(argv)
    reference = _tables(out)
    assert reference, "the uninterrupted run wrote no tables"
    names = {"semantic-entropy": 2, "eval": 1}[command]  # part files per chunk
    moments = [(names * 1, 0.0), (names * 2, 0.05), (names * 3, 0.0), (names * N, 0.0)]
    killed = 0
    for i, (n_parts, delay) in enumerate(moments):
        argv, parts, out = layout(tmp_path / f"kill{i}")
        killed += _kill_when(argv, parts, n_parts, delay)
        _run(argv)  # the rerun resumes from what the kill left
        _assert_same(reference, _tables(out))
        assert not parts.exists(), "part files left after the table was assembled"
        assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")], "temp files left behind"
    assert killed >= 3, f"only {killed} of {len(moments)} kills landed before the command finished"
