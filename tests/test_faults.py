"""Faults and mistakes: one writer per output (locks), resume means the same run, every bad input is one line.

The locks and the bad-input table run in-process through ``sent.cli.main`` on tiny fixtures (tests/_artifacts.py,
tests/_tiny.py); the settings check runs real one-step trainings of the tiny random Llama (seconds each).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sent import locks
from sent.cli import main as sent_main
from tests._artifacts import build_artifacts
from tests._tiny import build_tiny_model


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_artifacts(tmp_path_factory.mktemp("faults") / "root", runs=("sent",), n_steps=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    """``sent <argv>`` in-process: exit code and the non-blank stderr lines."""
    capsys.readouterr()
    rc = sent_main(argv)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


def _one_line(rc: int, lines: list[str], command: str) -> str:
    assert rc != 0, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"sent {command}: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture
def live_pid():
    """A process of this host that runs for the whole test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(path: Path, pid: int, host: str | None = None, command: str = "sent curriculum --other") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "command": command,
                                "started": "2024-05-01T12:01:00", "pid_start": None}))


def _curriculum_argv(root: Path, out: Path) -> list[str]:
    return ["curriculum", "--se", str(root / "se" / "math.parquet"), "--out", str(out), "--n-stages", "2"]


# ------------------------------------------------------------------------------------------------ locks


def test_second_writer_is_refused_with_one_line_naming_the_holder(root, tmp_path, capsys, live_pid):
    out = tmp_path / "cur"
    _write_lock(out / locks.LOCK, live_pid)
    line = _one_line(*_run(capsys, _curriculum_argv(root, out)), "curriculum")
    assert f"{out} is being written by pid {live_pid} on host {socket.gethostname()}" in line
    assert "(sent curriculum --other, since 2024-05-01 12:01); wait for it or stop it" in line
    assert not (out / "manifest.json").exists() and (out / locks.LOCK).exists()  # the holder's lock stays


def test_train_refuses_a_run_folder_another_process_writes(tmp_path, capsys, live_pid):
    run_dir = tmp_path / "runs" / "grpo" / "seed0"
    _write_lock(run_dir / locks.LOCK, live_pid, command="sent train --config grpo.yaml")
    line = _one_line(*_run(capsys, ["train", "--root", str(tmp_path), "--method", "grpo", "--seed", "0",
                                    "--use_cpu", "true"]), "train")
    assert line.startswith(f"sent train: {run_dir} is being written by pid {live_pid} on host ")
    assert "(sent train --config grpo.yaml, since" in line and line.endswith("wait for it or stop it")


def test_stale_lock_is_taken_over_with_a_warning_and_released(root, tmp_path, capsys, caplog):
    out = tmp_path / "cur"
    dead = _dead_pid()
    _write_lock(out / locks.LOCK, dead)
    with caplog.at_level("WARNING"):
        rc, lines = _run(capsys, _curriculum_argv(root, out))
    assert rc == 0 and lines == []
    assert f"taking over the stale lock of pid {dead}" in caplog.text
    assert (out / "manifest.json").exists() and not (out / locks.LOCK).exists()


def test_a_reused_pid_is_stale(live_pid):
    holder = {"pid": live_pid, "host": socket.gethostname(), "pid_start": "1"}  # the live process started later
    assert locks.is_stale(holder)
    assert not locks.is_stale({**holder, "pid_start": locks._process_start(live_pid)})
    assert not locks.is_stale({**holder, "host": "elsewhere", "pid": _dead_pid()})  # other hosts: never


def test_lock_of_another_host_is_never_taken_over(root, tmp_path, capsys):
    out = tmp_path / "cur"
    _write_lock(out / locks.LOCK, _dead_pid(), host="gpu-node-7")
    line = _one_line(*_run(capsys, _curriculum_argv(root, out)), "curriculum")
    assert "on host gpu-node-7" in line and f"delete {out / locks.LOCK}" in line


def test_lock_is_released_after_the_command_ends_and_after_an_exception(root, tmp_path, capsys):
    out = tmp_path / "cur"
    assert _run(capsys, _curriculum_argv(root, out))[0] == 0
    assert not (out / locks.LOCK).exists()
    nan_table = tmp_path / "nan.parquet"
    pd.read_parquet(root / "se" / "math.parquet").assign(se=np.nan).to_parquet(nan_table)  # fails inside the lock
    out2 = tmp_path / "cur2"
    _one_line(*_run(capsys, ["curriculum", "--se", str(nan_table), "--out", str(out2)]), "curriculum")
    assert out2.is_dir() and not (out2 / locks.LOCK).exists()
    with pytest.raises(RuntimeError), locks.writer_lock(tmp_path / "x", "test"):
        assert (tmp_path / "x" / locks.LOCK).exists()
        raise RuntimeError("boom")
    assert not (tmp_path / "x" / locks.LOCK).exists()


def test_an_unreadable_lock_is_refused_while_fresh_and_taken_over_when_old(tmp_path):
    lock = tmp_path / locks.LOCK
    lock.write_text("")  # a writer between creating the file and writing its record
    with pytest.raises(locks.LockHeldError, match="cannot be read"):
        locks.acquire(lock, "sent eval")
    old = lock.stat().st_mtime - 2 * locks.TORN_AFTER_S
    os.utime(lock, (old, old))  # ... or one killed right there
    assert locks.acquire(lock, "sent eval") == lock
    locks.release(lock)
    assert not lock.exists()


def test_only_the_main_process_takes_the_lock(tmp_path, monkeypatch, live_pid):
    folder = tmp_path / "run"
    _write_lock(folder / locks.LOCK, live_pid)
    monkeypatch.setenv("RANK", "1")
    with locks.writer_lock(folder, "sent train") as held:  # rank 1 neither fails nor touches rank 0's lock
        assert held is None
    assert json.loads((folder / locks.LOCK).read_text())["pid"] == live_pid
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(locks.LockHeldError, match=f"pid {live_pid}"):
        with locks.writer_lock(folder, "sent train"):
            pass


def test_a_lock_records_its_holder(tmp_path):
    with locks.writer_lock(tmp_path, "sent eval --out x") as path:
        doc = json.loads(path.read_text())
        assert doc["pid"] == os.getpid() and doc["host"] == socket.gethostname()
        assert doc["command"] == "sent eval --out x" and "T" in doc["started"]
        with pytest.raises(locks.LockHeldError, match="already being written by this process"):
            locks.acquire(path, "again")
    assert not path.exists()


# ------------------------------------------------------------------------------------------------ resume = same run


def _train_argv(model: Path, root: Path, *extra: str) -> list[str]:
    return ["train", "--model_name_or_path", str(model), "--root", str(root), "--train_data", "synthetic:math:8",
            "--method", "grpo", "--beta", "0", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "4", "--learning_rate", "0.01",
            "--save_strategy", "no", "--logging_steps", "1", "--use_cpu", "true", "--bf16", "false",
            "--gradient_checkpointing", "false", "--report_to", "none", "--disable_tqdm", "true", "--seed", "0",
            *extra]


def test_resume_with_other_settings_is_refused_and_overwrite_starts_afresh(tiny, tmp_path, capsys, caplog):
    run_dir = tmp_path / "runs" / "grpo" / "seed0"
    assert _run(capsys, _train_argv(tiny, tmp_path))[0] == 0
    assert (run_dir / "DONE").exists() and not (run_dir / locks.LOCK).exists()
    # a finished run with another learning rate is not "complete": same refusal as a half-done one
    line = _one_line(*_run(capsys, _train_argv(tiny, tmp_path, "--learning_rate", "0.001", "--top_k", "5")),
                     "train")
    assert line == (f"sent train: {run_dir} was started with learning_rate=0.01, now 0.001 (and 1 more: top_k); "
                    "rerun with the old settings or pass --overwrite to start afresh")
    # logging, saving and progress output are not settings of the run
    with caplog.at_level("INFO"):
        assert _run(capsys, _train_argv(tiny, tmp_path, "--logging_steps", "5", "--disable_tqdm", "false"))[0] == 0
    assert "complete (DONE exists)" in caplog.text
    assert _run(capsys, _train_argv(tiny, tmp_path, "--learning_rate", "0.001", "--overwrite"))[0] == 0
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert recorded["requested"]["learning_rate"] == 0.001 and (run_dir / "DONE").exists()
    assert _run(capsys, _train_argv(tiny, tmp_path, "--learning_rate", "0.001"))[0] == 0  # the new run resumes


def test_an_earlier_start_without_a_checkpoint_is_started_afresh(tmp_path, caplog):
    from sent.commands.train import check_same_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"requested": {"learning_rate": 0.01, "seed": 0}}))
    with caplog.at_level("WARNING"):
        check_same_run(run_dir, {"learning_rate": 0.1, "seed": 0}, overwrite=False)
    assert "left no checkpoint; starting afresh" in caplog.text
    (run_dir / "checkpoint-2").mkdir()
    with pytest.raises(ValueError, match="learning_rate=0.01, now 0.1;"):
        check_same_run(run_dir, {"learning_rate": 0.1, "seed": 0}, overwrite=False)


def test_the_settings_check_ignores_bookkeeping_and_the_curriculum_stage():
    from sent.trainer_config import RESUME_IGNORED, resume_changes

    old = {"requested": {"learning_rate": 0.01, "curriculum_stage": 1, "logging_steps": 1, "output_dir": "a",
                         "save_steps": 2, "report_to": ["none"], "max_steps": -1, "new_knob_later": 1}}
    new = {"learning_rate": 0.01, "curriculum_stage": 2, "logging_steps": 10, "output_dir": "b", "save_steps": 4,
           "report_to": ["wandb"], "max_steps": -1}
    assert resume_changes(old, new) == []
    assert resume_changes(old, {**new, "max_steps": 4}) == [("max_steps", -1, 4)]
    assert {"curriculum_stage", "logging_steps", "disable_tqdm", "report_to", "output_dir"} <= RESUME_IGNORED
    # a config.yaml from before the `requested` key: resolved sections, derived values (max_steps) not compared
    legacy = {"config": {"learning_rate": 0.01, "max_steps": 12}, "model": {"model_name_or_path": "stage1/final"}}
    assert resume_changes(legacy, {"learning_rate": 0.01, "max_steps": -1, "model_name_or_path": "base"}) == []
    assert resume_changes(legacy, {"learning_rate": 0.02})[0][0] == "learning_rate"


def test_curriculum_stage_2_resumes_the_run_that_stage_1_started(tiny, tmp_path, capsys):
    from sent.curriculum import write_curriculum

    rows = [{"prompt_id": f"p{i}", "problem": f"{i % 5} + 1", "answer": str(i % 5 + 1), "suite": "train",
             "domain": "math", "level": 1, "se": float(i)} for i in range(8)]
    cur = tmp_path / "cur"
    write_curriculum(pd.DataFrame(rows), cur, n_stages=2)
    argv = [a if a != "synthetic:math:8" else "curriculum" for a in _train_argv(tiny, tmp_path)]
    argv += ["--curriculum_dir", str(cur)]
    assert _run(capsys, [*argv, "--curriculum_stage", "1"])[0] == 0
    assert _run(capsys, [*argv, "--curriculum_stage", "2"])[0] == 0
    run_dir = tmp_path / "runs" / "grpo" / "seed0"
    assert (run_dir / "stage2" / "DONE").exists() and (run_dir / "DONE").read_text() == "step 2\n"
    line = _one_line(*_run(capsys, [*argv, "--curriculum_stage", "2", "--learning_rate", "0.5"]), "train")
    assert "was started with learning_rate=0.01, now 0.5;" in line


# ------------------------------------------------------------------------------------------------ bad inputs


def _nan_rollouts(root: Path, tmp: Path) -> Path:
    src = root / "runs" / "sent" / "seed0" / "rollouts"
    dest = tmp / "runs" / "nan" / "seed0" / "rollouts"
    dest.mkdir(parents=True)
    for f in sorted(src.glob("step_*.parquet")):
        df = pd.read_parquet(f)
        logp = [list(x) for x in df["logp"]]
        logp[1] = [float("nan")] * len(logp[1])
        df.assign(logp=logp).to_parquet(dest / f.name)
    return dest.parent


def _bad_inputs(root: Path, tmp: Path, tiny: Path) -> list[tuple[str, list[str], str]]:
    """(command, argv, a piece of the expected message)."""
    se = str(root / "se" / "math.parquet")
    nan_se = tmp / "nan_se.parquet"
    pd.read_parquet(se).assign(se=lambda d: d["se"].where(d.index != 3)).to_parquet(nan_se)
    bad_yaml, unknown_method = tmp / "bad.yaml", tmp / "unknown.yaml"
    bad_yaml.write_text("method: [grpo\n")
    unknown_method.write_text("method: nope\n")
    empty_rollouts = tmp / "runs" / "empty" / "seed0" / "rollouts"
    empty_rollouts.mkdir(parents=True)
    run = str(root / "runs" / "sent" / "seed0")
    train = ["--root", str(tmp), "--use_cpu", "true"]
    model = ["--model_name_or_path", str(tiny)]
    return [
        ("eval", ["--model", str(tmp / "no_model"), "--out", str(tmp / "ev"), "--suites", "toy-aime24"],
         "is not a local folder"),
        ("eval", ["--model", str(tiny), "--out", str(tmp / "ev"), "--k", "0"], "--k must be >= 1"),
        ("eval", ["--model", str(tiny), "--out", str(tmp / "ev"), "--suites", "aime2099"], "--suites: unknown"),
        ("eval", ["--model", str(tiny), "--out", str(tmp / "ev"), "--n-problems", "0"], "--n-problems must be >= 1"),
        ("eval", ["--model", str(tiny), "--out", str(tmp / "ev"), "--top-p", "1.5"], "--top-p 1.5 must be in (0, 1]"),
        ("eval", ["--model", str(tiny)], "--out is required"),
        ("eval", ["--suites", "toy"], "the following arguments are required: --model"),
        ("semantic-entropy", ["--root", str(tmp), "--model", str(tiny), "--M", "0"], "--M must be >= 1"),
        ("semantic-entropy", ["--root", str(tmp)], "is not a local folder"),  # <root>/base missing
        ("semantic-entropy", ["--root", str(tmp), "--n-prompts", "0"], "--n-prompts '0'"),
        ("semantic-entropy", ["--root", str(tmp), "--model", str(tiny), "--domain", "chess"], "has no toy generator"),
        ("curriculum", ["--root", str(tmp)], "missing artifact"),
        ("curriculum", ["--se", str(nan_se), "--out", str(tmp / "c1")], "NaN"),
        ("curriculum", ["--se", se, "--out", str(tmp / "c2"), "--n-stages", "0"], "--n-stages must be >= 1"),
        ("curriculum", ["--se", se, "--out", str(tmp / "c3"), "--method", "quantiles", "--quantiles", "1.5"],
         "quantiles must lie in (0.0, 1.0)"),
        ("curriculum", ["--se", se, "--out", str(tmp / "c4"), "--quantiles", "0.5"],
         "--quantiles applies only with --method quantiles"),
        ("analyze", ["bootstrap", "--rollouts", str(empty_rollouts)], "step_*.parquet"),
        ("analyze", ["bootstrap", "--rollouts", str(_nan_rollouts(root, tmp))], "'logp' has NaN"),
        ("analyze", ["bootstrap", "--rollouts", run, "--B", "0"], "B must be >= 2"),
        ("analyze", ["linguistic", "--rollouts", run, "--language", "xx"], "unknown language"),
        ("analyze", ["cross-domain", "--root", str(root)], "relations.parquet"),
        ("analyze", ["bootstrap"], "required: --rollouts"),
        ("train", ["--config", str(tmp / "missing.yaml"), *train], "No such file"),
        ("train", ["--config", str(bad_yaml), *train], "expected ',' or ']'"),
        ("train", ["--config", str(unknown_method), *train], "method='nope' is unknown"),
        ("train", ["--method", "grpo", "--learning_rate", "-0.001", *train], "learning_rate=-0.001 must be >= 0"),
        ("train", ["--method", "grpo", "--no_such_knob", "1", *train], "not used by the HfArgumentParser"),
        ("train", ["--method", "grpo", "--model_name_or_path", str(tmp / "no_model"), *train], "is not a local folder"),
        ("train", ["--method", "grpo", *model, "--train_data", "chess:10", *train], "train_data='chess:10'"),
        ("train", ["--method", "sent", "--token_filter", "content", "--token_filter_fn", "os:system", *train],
         "token_filter_fn='os:system' is outside the sent package"),
        ("train", ["--method", "grpo", "--model_name_or_path", str(tmp / "no_model"), "--dry_run", "true", *train],
         "is not a local folder"),  # --dry_run checks the model as the real run does
        ("train", ["--method", "grpo", *model, "--max_completion_length", "1030", "--dry_run", "true", *train],
         "max_completion_length=1030 leaves no room for a prompt in the model's 1024 positions"),
        ("train", ["--method", "grpo", *model, "--max_completion_length", "1020", "--train_data", "synthetic:math:8", *train],
         "training prompts do not fit the model's 1024 positions"),
        ("eval", ["--model", str(tiny), "--out", str(tmp / "ev"), "--batch-size", "0"], "--batch-size 0 must be >= 1"),
        ("curriculum", ["--se", se, "--out", str(tmp / "c5"), "--n-stages", "400"], "stages empty (first: stage"),
        ("rollouts", ["check", str(empty_rollouts)], "sent rollouts import --from <trainer>"),
        ("report", [str(tmp / "no_run")], "is not a folder"),
        ("convert-model", [str(tmp / "missing.gguf"), "--out", str(tmp / "m")], "is not a local folder"),
        ("convert-model", ["smollm2", "--out", str(tmp / "m"), "--dtype", "int8"], "invalid choice: 'int8'"),
        ("toy-base", ["--profile", "gpu"], "invalid choice: 'gpu'"),
        ("toy-base", ["--steps", "many"], "invalid int value: 'many'"),
    ]


def test_every_bad_input_is_one_line(root, tiny, tmp_path, capsys):
    cases = _bad_inputs(root, tmp_path, tiny)
    assert len(cases) >= 40
    for command, argv, expected in cases:
        rc, lines = _run(capsys, [command, *argv])
        line = _one_line(rc, lines, command)
        assert rc == 2, (argv, line)
        assert expected in line, (argv, line)
    assert not list(tmp_path.rglob(locks.LOCK)) and not list(tmp_path.rglob(f"*{locks.LOCK}"))  # all released


def test_a_bad_input_is_one_line_from_the_shell_too(root, tmp_path):
    """A real process: nothing but the one line on stderr (no usage text, no library warning, no traceback)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SENT_DEBUG", None)
    for argv, command in (
            (["curriculum", "--se", str(root / "se" / "math.parquet"), "--out", str(tmp_path / "c"), "--n-stages",
              "0"], "curriculum"),
            (["train", "--method", "grpo", "--learning_rate", "-1", "--use_cpu", "true", "--root", str(tmp_path)],
             "train"),
    ):
        res = subprocess.run([sys.executable, "-m", "sent.cli", *argv], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
        _one_line(res.returncode, [ln for ln in res.stderr.splitlines() if ln.strip()], command)


def test_debug_shows_the_traceback_and_bugs_keep_theirs(root, tmp_path, monkeypatch):
    argv = ["curriculum", "--se", str(root / "se" / "math.parquet"), "--out", str(tmp_path / "c"), "--n-stages", "0"]
    with pytest.raises(ValueError, match="--n-stages"):
        sent_main(["--debug", *argv])
    with pytest.raises(ValueError, match="--n-stages"):
        sent_main([*argv, "--debug"])
    monkeypatch.setenv("SENT_DEBUG", "1")
    with pytest.raises(ValueError, match="--n-stages"):
        sent_main(argv)
    monkeypatch.delenv("SENT_DEBUG")

    import sent.commands.curriculum as curriculum

    def bug(argv):
        raise KeyError("a bug")

    monkeypatch.setattr(curriculum, "main", bug)
    with pytest.raises(KeyError):  # not a user error: the traceback stays
        sent_main(argv)


def test_debug_after_train_keeps_trainings_own_debug_option():
    from sent.cli import split_debug

    assert split_debug(["train", "--debug", "underflow_overflow"]) == (["train", "--debug", "underflow_overflow"],
                                                                       False)
    assert split_debug(["train", "--debug", "--seed", "1"]) == (["train", "--seed", "1"], True)
    assert split_debug(["--debug", "eval", "--k", "1"]) == (["eval", "--k", "1"], True)


def test_one_line_collapses_multi_line_messages():
    from sent.cli import one_line

    assert one_line(ValueError("first\n  second\n")) == "first second"
    assert one_line(FileNotFoundError()) == "FileNotFoundError"


def test_a_custom_token_filter_needs_the_opt_in(monkeypatch):
    """A recipe is data: naming any importable function as token_filter_fn must not run it unless asked for."""
    from sent.trainer import load_token_filter
    from sent.trainer_config import ALLOW_CUSTOM_FILTER_ENV, CustomTokenFilterError, check_token_filter_fn

    monkeypatch.delenv(ALLOW_CUSTOM_FILTER_ENV, raising=False)
    assert load_token_filter("sent.tokens:content_mask")(["the", "cat", "7"]) == [False, True, False]
    for path in ("os:system", "sentx.tokens:content_mask", "tests._tiny:tiny_reward", " subprocess:run"):
        with pytest.raises(CustomTokenFilterError, match=f"{ALLOW_CUSTOM_FILTER_ENV}=1"):
            load_token_filter(path)
    assert issubclass(CustomTokenFilterError, ValueError)  # one line from the CLI
    monkeypatch.setenv(ALLOW_CUSTOM_FILTER_ENV, "1")
    check_token_filter_fn("tests._tiny:tiny_reward")
    assert load_token_filter("tests._tiny:tiny_reward").__name__ == "tiny_reward"

