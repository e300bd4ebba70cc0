"""Kill-safety of what ``sent train`` saves: checkpoints and final/ appear only when complete, resume takes the
newest complete checkpoint, a full disk is one line and the run resumes once space is freed; atomic writes keep
the umask's file mode.

The fast tests use hand-made checkpoint folders and one-step trainings of the tiny random Llama (seconds each). The
slow test kills real ``sent train`` processes (SIGKILL) mid-checkpoint, mid-step and while the stage-2 reference
model (stage 1's final/) is saved, and checks that the resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sent.checkpoints import checkpoint_folder, missing_files, resume_point, staging_folder
from sent.cli import main as sent_main
from sent.io import DiskFullError, atomic_folder, atomic_write_text, default_file_mode, is_disk_full, remove_partial
from tests._tiny import build_tiny_model


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _fake_checkpoint(folder: Path, step: int, skip: tuple[str, ...] = ()) -> Path:
    """A checkpoint folder with the files a resume loads (empty stand-ins), less ``skip``."""
    path = checkpoint_folder(folder, step)
    path.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        if name not in skip:
            (path / name).write_bytes(b"x")
    if "trainer_state.json" not in skip:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


# ------------------------------------------------------------------------------------------------ resume point


def test_an_incomplete_checkpoint_is_deleted_and_resume_takes_the_previous_complete_one(tmp_path, caplog):
    _fake_checkpoint(tmp_path, 2)
    _fake_checkpoint(tmp_path, 4, skip=("optimizer.pt",))  # killed before the optimizer was written
    _fake_checkpoint(tmp_path, 6, skip=("trainer_state.json",))
    staging = staging_folder(tmp_path, 8)
    _fake_checkpoint(staging, 8)  # a complete save killed just before its rename: still a partial name
    (tmp_path / ".tmp-config.yaml.abc.tmp").write_text("torn")  # an atomic write killed halfway
    assert missing_files(tmp_path / "checkpoint-4") == ["optimizer.pt"]
    assert missing_files(tmp_path / "checkpoint-6", model_only=True) == ["trainer_state.json"]
    assert remove_partial(tmp_path) == [tmp_path / ".tmp-checkpoint-8", tmp_path / ".tmp-config.yaml.abc.tmp"]
    with caplog.at_level("WARNING"):
        assert resume_point(tmp_path) == (tmp_path / "checkpoint-2", 2)
    assert "checkpoint-4 is incomplete (no optimizer.pt)" in caplog.text
    assert "checkpoint-6 is incomplete (no trainer_state.json)" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]


def test_resume_point_of_sharded_model_only_and_empty_folders(tmp_path):
    ckpt = _fake_checkpoint(tmp_path, 3, skip=("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"))
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors",
                                                                                  "b": "model-2.safetensors"}}))
    (ckpt / "model-1.safetensors").write_bytes(b"x")
    assert missing_files(ckpt, model_only=True) == ["model-2.safetensors"]  # index written, a shard not yet
    (ckpt / "model-2.safetensors").write_bytes(b"x")
    assert resume_point(tmp_path, model_only=True, clean=False) == (ckpt, 3)  # save_only_model checkpoints
    assert resume_point(tmp_path, clean=False) == (None, 0) and ckpt.exists()  # not the main process: kept
    assert resume_point(tmp_path / "missing") == (None, 0)


# ------------------------------------------------------------------------------------------------ atomic writes


def test_atomic_writes_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o027)
    try:
        assert default_file_mode() == 0o640
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "plain.txt").write_text("x")  # what a normal write gives, for comparison
        with atomic_folder(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
            (tmp / "model.safetensors").write_text("x")
            os.chmod(tmp / "model.safetensors", 0o600)  # as safetensors leaves it
    finally:
        os.umask(old)
    mode = (tmp_path / "a.txt").stat().st_mode & 0o777
    assert mode == 0o640 == (tmp_path / "plain.txt").stat().st_mode & 0o777  # not mkstemp's 0600
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o750  # a plain mkdir's mode
    assert {(p.name, p.stat().st_mode & 0o777) for p in (tmp_path / "model").iterdir()} == {
        ("config.json", 0o640), ("model.safetensors", 0o640)}
    atomic_write_text(tmp_path / "b.txt", "x")
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o666 & ~old


def test_atomic_folder_is_all_or_nothing(tmp_path):
    dest = tmp_path / "final"
    with atomic_folder(dest) as tmp:
        (tmp / "model.safetensors").write_text("v1")
    with pytest.raises(RuntimeError), atomic_folder(dest) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise RuntimeError("killed")
    assert (dest / "model.safetensors").read_text() == "v1"  # the old folder stays whole
    with atomic_folder(dest) as tmp:
        (tmp / "model.safetensors").write_text("v2")
    assert (dest / "model.safetensors").read_text() == "v2" and [p.name for p in tmp_path.iterdir()] == ["final"]


def test_a_full_disk_names_the_path(tmp_path):
    with pytest.raises(DiskFullError) as info, atomic_folder(tmp_path / "final"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(info.value) == (f"no space left on device while writing {tmp_path / 'final'}; free some space and "
                               "rerun the same command (it resumes where it stopped)")
    assert not list(tmp_path.iterdir())  # the partial folder is gone: its space is free again
    assert is_disk_full(RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("file write failed"), tmp_path)  # plenty of space here: some other failure


# ------------------------------------------------------------------------------------------------ sent train


def _train_argv(model: Path, root: Path, *extra: str) -> list[str]:
    return ["train", "--model_name_or_path", str(model), "--root", str(root), "--train_data", "synthetic:math:8",
            "--method", "entropy_bonus", "--entropy_coef", "0.5", "--beta", "0", "--max_steps", "4", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "4", "--learning_rate", "0.01",
            "--lr_scheduler_type", "constant", "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1",
            "--use_cpu", "true", "--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none",
            "--disable_tqdm", "true", "--seed", "0", *extra]


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for x, y in zip(a, b):
        for key in ("loss", "grad_norm", "reward", "entropy/all", "learning_rate"):
            assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-7), (x["step"], key)


def test_a_full_disk_while_checkpointing_is_one_line_and_the_run_resumes(tiny, tmp_path, capsys, monkeypatch, caplog):
    from transformers import Trainer

    assert sent_main(_train_argv(tiny, tmp_path / "a")) == 0
    run_a = tmp_path / "a" / "runs" / "entropy_bonus" / "seed0"

    original = Trainer._save_optimizer_and_scheduler

    def full_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", full_at_step_4)
    capsys.readouterr()
    assert sent_main(_train_argv(tiny, tmp_path / "b")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sent ")]  # not progress bars
    run_b = tmp_path / "b" / "runs" / "entropy_bonus" / "seed0"
    assert lines == [f"sent train: no space left on device while writing {run_b / 'checkpoint-4'}; free some space "
                     "and rerun the same command (it resumes where it stopped)"]
    assert sorted(p.name for p in run_b.iterdir() if "checkpoint" in p.name) == ["checkpoint-2"]  # no partial left
    assert not (run_b / "DONE").exists() and not (run_b / ".lock").exists()
    monkeypatch.undo()
    # what a kill could leave besides: an incomplete checkpoint (written before saves were staged), a staging folder
    incomplete = _fake_checkpoint(run_b, 3, skip=("optimizer.pt",))
    (staging_folder(run_b, 4) / "checkpoint-4").mkdir(parents=True)
    with caplog.at_level("INFO"):
        assert sent_main(_train_argv(tiny, tmp_path / "b")) == 0  # space freed: the same command resumes
    assert "checkpoint-3 is incomplete (no optimizer.pt)" in caplog.text and not incomplete.exists()
    assert "resuming from" in caplog.text and f"{run_b / 'checkpoint-2'} (step 2)" in caplog.text
    assert not list(run_b.glob(".tmp-*")) and (run_b / "DONE").read_text() == "step 4\n"
    _same_metrics(_metrics(run_a), _metrics(run_b))
    assert len({m["entropy/all"] for m in _metrics(run_a)}) == 4  # the weights move: equal metrics, equal runs


def test_final_model_is_built_under_a_partial_name(tiny, tmp_path, monkeypatch, caplog):
    """A kill while final/ (the next stage's start and reference) is saved leaves no final/ and no DONE."""
    from transformers import PreTrainedTokenizerBase

    original = PreTrainedTokenizerBase.save_pretrained

    def killed_in_final(self, save_directory, *args, **kwargs):
        if Path(save_directory).name.startswith(".tmp-final-"):  # not the checkpoints' tokenizer files
            raise KeyboardInterrupt  # the process dies between the model and the tokenizer files
        return original(self, save_directory, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", killed_in_final)
    with pytest.raises(KeyboardInterrupt):
        sent_main(_train_argv(tiny, tmp_path, "--max_steps", "2"))
    run_dir = tmp_path / "runs" / "entropy_bonus" / "seed0"
    assert not (run_dir / "final").exists() and not (run_dir / "DONE").exists()
    assert missing_files(run_dir / "checkpoint-2") == [] and not list(run_dir.glob(".tmp-*"))
    monkeypatch.undo()
    with caplog.at_level("INFO"):
        assert sent_main(_train_argv(tiny, tmp_path, "--max_steps", "2")) == 0
    assert f"resuming from {run_dir / 'checkpoint-2'} (step 2)" in caplog.text  # nothing left to train: saves final/
    assert (run_dir / "final" / "model.safetensors").exists() and (run_dir / "final" / "tokenizer.json").exists()
    assert (run_dir / "DONE").read_text() == "step 2\n" and [m["step"] for m in _metrics(run_dir)] == [1, 2]
    assert sent_main(_train_argv(tiny, tmp_path / "a", "--max_steps", "2")) == 0  # uninterrupted: the same final/
    final_a = tmp_path / "a" / "runs" / "entropy_bonus" / "seed0" / "final"
    assert sorted(p.name for p in final_a.iterdir()) == sorted(p.name for p in (run_dir / "final").iterdir())
    assert (final_a / "model.safetensors").read_bytes() == (run_dir / "final" / "model.safetensors").read_bytes()


# ------------------------------------------------------------------------------------------------ real kills (slow)

# `sent train` with every save slowed down (HF Trainer._save sleeps after writing the weights), so a poll can see a
# partial folder and SIGKILL the process inside it: a kill that lands mid-save, every time.
_SLOW_SAVES = """
import sys, time
from transformers import Trainer
_save = Trainer._save
def slow_save(self, *args, **kwargs):
    _save(self, *args, **kwargs)
    time.sleep(1.5)
Trainer._save = slow_save
from sent.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _curriculum(tmp_path: Path) -> Path:
    from sent.curriculum import write_curriculum

    rows = [{"prompt_id": f"p{i}", "problem": f"{i % 5} + 1", "answer": str(i % 5 + 1), "suite": "train",
             "domain": "math", "level": 1, "se": float(i)} for i in range(6)]
    write_curriculum(pd.DataFrame(rows), tmp_path / "cur", n_stages=2)
    return tmp_path / "cur"


def _kill_argv(model: Path, root: Path, cur: Path) -> list[str]:
    argv = _train_argv(model, root, "--curriculum_dir", str(cur), "--epochs_per_stage", "1", "--save_steps", "1",
                       "--record_rollouts_every", "1")
    argv[argv.index("--train_data") + 1] = "curriculum"
    argv[argv.index("--max_steps") + 1] = "-1"  # 3 prompts per stage, 1 per step: 3 steps per stage
    return argv


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", _SLOW_SAVES, *argv], cwd=REPO, env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, seen, what: str, timeout: float = 240.0) -> None:
    """SIGKILL ``proc`` as soon as ``seen()`` is true (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while not seen():
        assert proc.poll() is None, f"sent train ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_to_the_uninterrupted_run(tiny, tmp_path):
    """~1.5 min on 2 CPU cores: one uninterrupted run, then one killed four times and resumed each time: while
    checkpoint-2 is written, right after it appeared (mid-step), while stage 1's final/ (stage 2's start and reference
    model) is written, and while stage 2 writes a checkpoint."""
    from safetensors.torch import load_file

    cur = _curriculum(tmp_path)
    log = tmp_path / "train.log"
    assert sent_main(_kill_argv(tiny, tmp_path / "a", cur)) == 0  # uninterrupted, in this process
    run_a, run_b = (tmp_path / r / "runs" / "entropy_bonus" / "seed0" for r in ("a", "b"))
    argv = _kill_argv(tiny, tmp_path / "b", cur)
    stage1, stage2 = run_b / "stage1", run_b / "stage2"
    kills = [
        ("stage 1 writing checkpoint-2", lambda: (stage1 / ".tmp-checkpoint-2").exists()),
        ("stage 1 mid-step after checkpoint-2", lambda: (stage1 / "checkpoint-2").exists()),
        ("stage 1 writing final/ (stage 2's start and reference)", lambda: any(stage1.glob(".tmp-final-*"))),
        ("stage 2 writing checkpoint-2", lambda: (stage2 / ".tmp-checkpoint-2").exists()),
    ]
    for what, seen in kills:
        _kill_when(_start(argv, log), seen, what)
        for folder in (stage1, stage2):  # what the kill left is never under a final name
            for ckpt in folder.glob("checkpoint-*"):
                assert missing_files(ckpt) == [], (what, ckpt)
    assert not (stage1 / "DONE").exists() or (stage1 / "final" / "model.safetensors").exists()
    last = _start(argv, log)
    assert last.wait(timeout=400) == 0, log.read_text()[-3000:]

    assert (run_b / "DONE").read_text() == (run_a / "DONE").read_text() == "step 6\n"
    a, b = _metrics(run_a), _metrics(run_b)
    assert [m["step"] for m in b] == list(range(1, 7)) and [m["stage"] for m in b] == [1, 1, 1, 2, 2, 2]
    _same_metrics(a, b)
    wa, wb = load_file(run_a / "final" / "model.safetensors"), load_file(run_b / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert (wa[name] - wb[name]).abs().max() <= 1e-5, name
    ra, rb = (sorted(p.name for p in (r / "rollouts").glob("step_*.parquet")) for r in (run_a, run_b))
    assert ra == rb == [f"step_{s:06d}.parquet" for s in range(1, 7)]
    assert not list(run_b.rglob(".tmp-*"))


def test_remove_partial_with_names_leaves_other_writers_files(tmp_path):
    from sent.io import remove_partial

    for name in (".tmp-math.parquet.abc.parquet", ".tmp-math_samples.parquet.x.parquet",
                 ".tmp-relations.parquet.def.parquet", "math.parquet"):
        (tmp_path / name).write_text("x")
    removed = remove_partial(tmp_path, ["math.parquet", "math_samples.parquet"])
    assert sorted(p.name for p in removed) == [".tmp-math.parquet.abc.parquet", ".tmp-math_samples.parquet.x.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-relations.parquet.def.parquet", "math.parquet"]
    assert [p.name for p in remove_partial(tmp_path)] == [".tmp-relations.parquet.def.parquet"]
