"""Training checkpoints of ``sent train``: complete or invisible, and resume from the newest complete one.

HF's Trainer writes ``checkpoint-<step>/`` file by file (weights, optimizer, scheduler, RNG states, trainer state),
and ``transformers.trainer_utils.get_last_checkpoint`` picks the highest step whatever it holds: a kill (or a full
disk) in the middle of a save left a run that failed at every resume. Two rules close that:

* a checkpoint appears only when complete: ``SENTTrainer._save_checkpoint`` lets HF write it into
  ``.tmp-checkpoint-<step>/`` (:func:`staging_folder`, one name on every rank, so each rank's ``rng_state_<rank>.pth``
  lands there) and :func:`publish_checkpoint` renames it to ``checkpoint-<step>/`` once all ranks are done, then
  applies ``save_total_limit``; ``final/`` is built the same way (:func:`sent.io.atomic_folder`);
* resume takes the newest checkpoint that holds what a resume loads (:func:`missing_files`) and deletes, with a
  warning, the ones that do not (folders written before this rule, a rotation killed halfway): :func:`resume_point`.

What a kill leaves under a partial name (``.tmp-*``) is deleted by the next run (:func:`sent.io.remove_partial`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from sent.io import replace_folder, set_default_modes


logger = logging.getLogger(__name__)

#: ``transformers.trainer_utils.PREFIX_CHECKPOINT_DIR`` (tests/test_checkpoints.py pins it).
CHECKPOINT_PREFIX = "checkpoint"
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")
# What a resume loads, each as alternatives (plain, sharded, PEFT adapter, FSDP, DeepSpeed layouts of HF's Trainer).
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
            "adapter_model.safetensors", "adapter_model.bin", "pytorch_model_fsdp_0", "global_step*")
_OPTIMIZER = ("optimizer.pt", "optimizer.bin", "optimizer_0", "global_step*")
_SCHEDULER = ("scheduler.pt",)
_RNG = ("rng_state.pth", "rng_state_*.pth")
# A model folder from_pretrained opens (what Trainer.save_model writes), as opposed to FSDP / DeepSpeed shards.
_PLAIN_WEIGHTS = _WEIGHTS[:6]
# What only a resume reads; the rest of a checkpoint is the model folder Trainer.save_model writes.
_RESUME_ONLY = (*_OPTIMIZER, *_SCHEDULER, *_RNG, TRAINER_STATE, "scaler.pt", "latest", "zero_to_fp32.py",
                "entropy_ctrl_state.json")


def checkpoint_folder(folder: str | os.PathLike, step: int) -> Path:
    """``checkpoint-<step>/`` of a run or curriculum-stage folder."""
    return Path(folder) / f"{CHECKPOINT_PREFIX}-{int(step)}"


def staging_folder(folder: str | os.PathLike, step: int) -> Path:
    """Where ``checkpoint-<step>/`` is written before it is complete: ``.tmp-checkpoint-<step>/checkpoint-<step>/``.

    No PID in the name: under ``accelerate launch`` every rank writes its RNG state into the same folder (one writer
    per run folder is the lock's job)."""
    from sent.io import PARTIAL_PREFIX

    return Path(folder) / f"{PARTIAL_PREFIX}{CHECKPOINT_PREFIX}-{int(step)}"


def checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``checkpoint-<step>/`` folders in ``folder``, by step."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return sorted(found)


def _has_any(folder: Path, patterns: tuple[str, ...]) -> bool:
    return any(any(folder.glob(pattern)) for pattern in patterns)


def _missing_shards(folder: Path) -> list[str]:
    """Shards a weight index names that are not there (an index written, its shards not yet)."""
    missing = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        path = folder / index
        if path.exists():
            try:
                shards = set(json.loads(path.read_text())["weight_map"].values())
            except (ValueError, KeyError, TypeError, AttributeError):
                return [f"{index} (unreadable)"]
            missing += sorted(s for s in shards if not (folder / s).exists())
    return missing


def missing_files(checkpoint: str | os.PathLike, model_only: bool = False) -> list[str]:
    """What ``checkpoint`` lacks for a resume (empty when complete): ``trainer_state.json`` with a ``global_step``,
    model weights (with every shard an index names) and, unless ``model_only`` (``save_only_model``), the optimizer,
    ``scheduler.pt`` and the RNG state(s)."""
    folder = Path(checkpoint)
    missing = []
    try:
        int(json.loads((folder / TRAINER_STATE).read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        missing.append(TRAINER_STATE)
    if not _has_any(folder, _WEIGHTS):
        missing.append("model weights")
    missing += _missing_shards(folder)
    if not model_only:
        for name, patterns in (("optimizer.pt", _OPTIMIZER), ("scheduler.pt", _SCHEDULER), ("rng_state.pth", _RNG)):
            if not _has_any(folder, patterns):
                missing.append(name)
    return missing


def resume_point(folder: str | os.PathLike, model_only: bool = False, clean: bool = True) -> tuple[Path | None, int]:
    """``(checkpoint, its global step)`` of the newest complete checkpoint in ``folder``, or ``(None, 0)``.

    Incomplete checkpoints (:func:`missing_files`) are skipped and, with ``clean`` (the main process, holding the
    run's lock), deleted with a warning naming what they lack: no later resume could load them."""
    chosen: tuple[Path | None, int] = (None, 0)
    for _, path in reversed(checkpoints(folder)):
        missing = missing_files(path, model_only)
        if missing:
            logger.warning("%s is incomplete (no %s), left by a killed or failed save; %s", path, ", ".join(missing),
                           "deleting it" if clean else "skipping it")
            if clean:
                shutil.rmtree(path, ignore_errors=True)
            continue
        if chosen[0] is None:
            state = json.loads((path / TRAINER_STATE).read_text())
            chosen = (path, int(state["global_step"]))
    return chosen


def publish_checkpoint(staging: str | os.PathLike, folder: str | os.PathLike, step: int,
                       save_total_limit: int | None = None, best_model_checkpoint: str | None = None) -> Path:
    """Move the complete ``<staging>/checkpoint-<step>/`` (its files with the default file mode) to
    ``<folder>/checkpoint-<step>/``, delete ``staging``, then keep at most ``save_total_limit`` checkpoints (HF's
    ``rotate_checkpoints``, which the Trainer ran inside the staging folder where it had nothing to do). Returns the
    checkpoint's path."""
    from transformers.trainer_utils import rotate_checkpoints

    dest = checkpoint_folder(folder, step)
    set_default_modes(Path(staging) / dest.name)
    replace_folder(Path(staging) / dest.name, dest)
    shutil.rmtree(staging, ignore_errors=True)
    rotate_checkpoints(output_dir=str(folder), save_total_limit=save_total_limit,
                       best_model_checkpoint=best_model_checkpoint, use_mtime=True)
    return dest


def has_plain_weights(checkpoint: str | os.PathLike) -> bool:
    """Whether ``checkpoint`` holds its model as a plain HF model folder (not FSDP / DeepSpeed shards)."""
    return _has_any(Path(checkpoint), _PLAIN_WEIGHTS)


def export_model(checkpoint: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Put the model folder of ``checkpoint`` (weights, config, tokenizer, training args: what ``save_model``
    wrote) into the existing folder ``dest``, leaving out what only a resume reads; hard links where possible."""
    from sent.io import link_or_copy

    src, dest = Path(checkpoint), Path(dest)
    skip = {p for pattern in _RESUME_ONLY for p in src.glob(pattern)}
    for path in sorted(src.iterdir()):
        if path in skip:
            continue
        if path.is_dir():
            shutil.copytree(path, dest / path.name, copy_function=link_or_copy)
        else:
            link_or_copy(path, dest / path.name)

