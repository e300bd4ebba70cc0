"""``sent train --config recipe.yaml [--field value ...]``: GRPO / SENT / a baseline into ``runs/<run>/seed<k>/``.

Parses ``(TrainScriptArguments, SENTConfig, ModelConfig)`` with ``sent.trainer_config.train_parser`` (TRL's
``TrlParser``), then: run folder, config.yaml,
data, model, reward, trainer, train (resuming from the last checkpoint), final/, DONE. A run whose DONE marker exists
is skipped. ``--dry_run`` stops after building the config and the datasets (hub data replaced by fixtures).

One writer per run folder: the main process holds the folder's lock (:mod:`sent.locks`) for the whole command, so a
second ``sent train`` into the same folder stops with one line naming the first. Resume means the same run: a folder
whose ``config.yaml`` records other settings (``requested``, compared by
:func:`sent.trainer_config.resume_changes`, which leaves out ``RESUME_IGNORED``) and holds training (a checkpoint,
final/ or DONE, :func:`has_progress`) is refused, a finished one too, unless ``--overwrite`` deletes its contents
first. An earlier start that left no checkpoint is simply started afresh (with a warning).

Kill-safe: a checkpoint, ``final/`` (also the next curriculum stage's start and reference model) and the run's
``final/`` appear under their names only when complete (built under ``.tmp-*`` names and renamed; :mod:`sent.io`,
:mod:`sent.checkpoints`), the DONE marker is written after ``final/``, resume takes the newest complete checkpoint,
and what a killed start left under ``.tmp-*`` is deleted first. When the newest checkpoint is the last step's (a kill
while final/ was saved), final/ is made from its model files instead of resuming HF's loop, which would train one
step past ``max_steps`` when the data goes on. A full disk stops the command with one line naming the path; rerun it
once space is freed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from sent.artifacts import (
    RootPaths,
    RunPaths,
    config_file,
    done_file,
    final_dir,
    lock_file,
    manifest_file,
    read_done,
    read_run_config,
    stage_folder,
    truncate_jsonl,
    write_done,
)
from sent.locks import command_line, is_main_process, writer_lock


logger = logging.getLogger(__name__)


def _parse(argv):
    from sent.trainer_config import train_parser

    argv = list(argv or [])
    if any(a.startswith("--dry_run") for a in argv):
        argv += ["--use_cpu", "true"]  # validate GPU recipes on a CPU-only machine (bf16 checks need use_cpu)
    return train_parser().parse_args_and_config(argv)


def _rows_to_dataset(df, script):
    from datasets import Dataset

    from sent.data import render_prompts

    if "prompt" not in df.columns:
        df = render_prompts(df, script.prompt_template)
    if script.chat:
        df = df.assign(prompt=[[{"role": "user", "content": p}] for p in df["prompt"]])
    keep = [c for c in ("prompt_id", "problem", "answer", "suite", "domain", "level", "prompt", "stage") if c in df]
    return Dataset.from_pandas(df[keep].reset_index(drop=True), preserve_index=False)


def _load_rows(spec: str, script, dry_run: bool):
    import pandas as pd

    if spec.startswith("synthetic:"):
        _, domain, n = spec.split(":")
        if domain == "math":
            from sent.data import make_math_problems
            return make_math_problems(int(n), split="train", seed=0)
        from sent.data import make_relation_problems
        return make_relation_problems(int(n), split="train", seed=0)
    if spec.startswith("benchmark:"):
        from sent.data.benchmarks import load_benchmark
        name = spec.split(":", 1)[1]
        return load_benchmark(name, source="fixture" if dry_run else None, allow_download=script.allow_download)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"train_data={spec!r} is neither 'synthetic:<domain>:<n>', 'benchmark:<name>', 'curriculum' "
                         "nor an existing file")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=path.suffix == ".jsonl")


def _stage_tables(script, config, dry_run: bool) -> tuple[list, int]:
    """The stages this run trains (``Dataset`` each) and the 1-based index of the first one.

    Without a curriculum the whole table is one stage. With ``curriculum_stage`` only that stage is returned."""
    if config.curriculum_dir is None:
        if script.train_data == "curriculum":
            raise ValueError("train_data=curriculum needs --curriculum_dir <folder with manifest.json>")
        return [_rows_to_dataset(_load_rows(script.train_data, script, dry_run), script)], 1
    from sent.curriculum import load_stage, read_manifest

    if dry_run and not manifest_file(config.curriculum_dir).exists():
        logger.warning("dry run: %s has no manifest (make it with `sent curriculum`); using train_data as 1 stage",
                       config.curriculum_dir)
        spec = "synthetic:math:64" if script.train_data == "curriculum" else script.train_data
        return [_rows_to_dataset(_load_rows(spec, script, dry_run), script)], config.curriculum_stage or 1
    indices = sorted(s["index"] for s in read_manifest(config.curriculum_dir)["stages"])
    if config.curriculum_stage is not None:
        if config.curriculum_stage not in indices:
            raise ValueError(f"curriculum_stage={config.curriculum_stage} is not in {config.curriculum_dir} "
                             f"(stages {indices})")
        indices = [config.curriculum_stage]
    return [_rows_to_dataset(load_stage(config.curriculum_dir, i), script) for i in indices], indices[0]


def build_train_dataset(script, config, dry_run: bool = False):
    """The training ``Dataset`` in the order it is trained: each stage (the whole table when there is no curriculum)
    repeated for its epochs, shuffled per epoch, cut to whole generation batches (verl's drop_last)."""
    from sent.curriculum import build_curriculum_dataset

    stages, first = _stage_tables(script, config, dry_run)
    epochs = config.epochs_per_stage if config.curriculum_dir is not None else int(config.num_train_epochs)
    per_gen = config.generation_batch_size // config.num_generations
    if dry_run:
        per_gen = min(per_gen, min(len(s) for s in stages))
    return build_curriculum_dataset(stages, epochs_per_stage=epochs, prompts_per_generation=per_gen,
                                    seed=config.seed, first_stage=first)


def planned_max_steps(config, n_rows: int) -> int:
    """Optimizer steps that make exactly one pass over the built dataset: generation batches x updates per batch."""
    per_gen = config.generation_batch_size // config.num_generations
    return n_rows // per_gen * config.updates_per_generation()


def _write_config(out: Path, script, config, model_args, requested: dict) -> None:
    """``config.yaml``: the resolved sections as trained (``script``, ``model``, ``config``) and the settings as
    requested (``requested``, before max_steps, the model path and the stage were derived; the resume check)."""
    import yaml

    from sent.io import atomic_write_text

    doc = {"script": asdict(script), "model": asdict(model_args), "config": json.loads(config.to_json_string()),
           "requested": requested}
    atomic_write_text(config_file(out), yaml.safe_dump(doc, sort_keys=True))


def check_same_run(run_dir: Path, requested: dict, overwrite: bool) -> None:
    """Resume means the same run: raise ``ValueError`` (one line, the first changed setting) when ``run_dir`` was
    started with other settings; with ``overwrite`` delete its contents (main process) instead."""
    from sent.trainer_config import resume_changes, resume_changes_message

    if overwrite:
        if is_main_process() and run_dir.is_dir():
            _clear_folder(run_dir, keep=lock_file(run_dir))
            logger.warning("--overwrite: deleted the contents of %s; starting afresh", run_dir)
        return
    recorded = read_run_config(run_dir)
    if recorded is None:
        return
    changes = resume_changes(recorded, requested)
    if not changes:
        return
    if not has_progress(run_dir):  # an earlier start that trained nothing: nothing to resume, nothing to protect
        logger.warning("%s: settings changed since the last start (%s), which left no checkpoint; starting afresh",
                       run_dir, ", ".join(name for name, _, _ in changes))
        return
    raise ValueError(resume_changes_message(run_dir, changes))


def has_progress(run_dir: Path) -> bool:
    """True when ``run_dir`` holds training to resume or results: a checkpoint, a final model or a DONE marker, of
    the run or of one of its curriculum stages."""
    for folder in (run_dir, *sorted(run_dir.glob("stage*"))):
        if done_file(folder).exists() or final_dir(folder).exists() or any(folder.glob("checkpoint-*")):
            return True
    return False


def check_model(spec: str | None) -> None:
    """A model that cannot be opened fails before the run folder is written: no spec, or a local path (absolute,
    relative with ``./``, ``~`` or several parts, a ``.gguf`` file) that is not a model."""
    if spec is None:
        raise ValueError("--model_name_or_path is required (e.g. artifacts/cpu/base from `sent toy-base`)")
    text = str(spec)
    local = text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith(".gguf") or Path(text).exists()
    if local:
        from sent.generation import resolve_model_spec

        resolve_model_spec(text, allow_download=False)


def check_fits(spec: str | None, dataset, max_completion_length: int) -> None:
    """:func:`sent.sampling_jobs.refuse_overlong` for the training prompts, when ``spec`` is a local model folder with
    ``config.json`` and a tokenizer (other specs are checked when loaded). Chat prompts are counted by their message
    text (a lower bound)."""
    from sent.sampling_jobs import refuse_overlong

    folder = Path(str(spec)).expanduser() if spec else None
    if folder is None or not (folder / "config.json").is_file() or "prompt" not in dataset.column_names:
        return
    limit = json.loads((folder / "config.json").read_text()).get("max_position_embeddings")
    if not limit:
        return
    from transformers import AutoTokenizer

    texts = [p if isinstance(p, str) else " ".join(m.get("content", "") for m in p) for p in dataset["prompt"]]
    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(folder)(texts, add_special_tokens=True)["input_ids"]]
    ids = dataset["prompt_id"] if "prompt_id" in dataset.column_names else list(range(len(dataset)))
    refuse_overlong(ids, lengths, limit, max_completion_length, what="training prompts",
                    knob="max_completion_length")

def _clear_folder(folder: Path, keep: Path) -> None:
    import shutil

    for path in folder.iterdir():
        if path == keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _resume_point(out: Path, config):
    """(checkpoint folder, its global step) of the latest complete checkpoint, or (None, 0); the main process deletes
    what killed saves left (partial ``.tmp-*`` folders, incomplete checkpoints) first."""
    from sent.checkpoints import resume_point
    from sent.io import remove_partial

    main = is_main_process()
    if main:
        for path in remove_partial(out):
            logger.warning("deleted %s, left by a killed or failed save", path)
    last, step = resume_point(out, model_only=bool(config.save_only_model), clean=main)
    return (None if last is None else str(last)), step


def main(argv: list[str] | None = None) -> int:
    import torch

    from sent.trainer_config import requested_settings

    script, config, model_args = _parse(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run = script.run or config.method
    run_paths = RunPaths(script.root, run, config.seed)
    run_dir = run_paths.dir
    config.run_name = run_paths.name
    if script.dry_run:
        check_model(model_args.model_name_or_path)
        dataset = build_train_dataset(script, config, dry_run=True)
        check_fits(model_args.model_name_or_path, dataset, config.max_completion_length)
        logger.info("dry run OK: method=%s, %d training rows (%d optimizer steps), output would be %s", config.method,
                    len(dataset), planned_max_steps(config, len(dataset)), run_dir)
        return 0
    requested = requested_settings(script, config, model_args)
    with writer_lock(run_dir, command_line("sent train", argv)):  # main process only; held for all the work
        check_same_run(run_dir, requested, script.overwrite)
        if run_paths.done.exists():
            logger.info("%s is complete (DONE exists); nothing to do", run_dir)
            return 0
        return _train_run(script, config, model_args, run_paths, requested)


def _train_run(script, config, model_args, run_paths: RunPaths, requested: dict) -> int:
    from sent.io import remove_partial

    if is_main_process():  # the one writer (it holds the lock)
        for path in remove_partial(run_paths.dir):
            logger.warning("deleted %s, left by a killed or failed save", path)
    model_args.model_name_or_path = trainable_model_path(model_args.model_name_or_path, Path(script.root))
    if config.curriculum_dir is None:
        return _train_part(script, config, model_args, run_paths.dir, run_paths, 0, requested)
    from sent.curriculum import read_manifest

    all_stages = sorted(s["index"] for s in read_manifest(config.curriculum_dir)["stages"])
    todo = [config.curriculum_stage] if config.curriculum_stage is not None else all_stages
    for stage in todo:
        rc = _train_stage(script, config, model_args, run_paths, stage, all_stages, requested)
        if rc:
            return rc
    return 0


def trainable_model_path(spec: str | None, root: Path) -> str | None:
    """The model as something ``from_pretrained`` (and TRL's reference loading) can open: HF folders and hub ids
    unchanged; a GGUF spec that ``sent.generation.load_model`` accepts (``smollm2``, a ``.gguf`` file) converted once
    to an HF folder under ``<root>/models/`` (``sent convert-model``)."""
    if spec is None:
        return None
    from sent.generation import ModelSpecError, materialize_model, resolve_model_spec

    try:
        source = resolve_model_spec(spec, allow_download=True)
    except ModelSpecError:
        return spec  # let from_pretrained say what is wrong with it
    if source.kind != "gguf":
        return spec
    name = Path(source.gguf_file or str(spec)).stem.replace(".", "_")
    folder = materialize_model(spec, RootPaths(root).model(name))
    logger.info("model %s converted to the HF folder %s", spec, folder)
    return str(folder)


def _stage_steps(run_dir: Path, stage: int) -> int:
    done = done_file(stage_folder(run_dir, stage))
    if not done.exists():
        raise FileNotFoundError(f"curriculum stage {stage} of {run_dir} has not finished ({done} is missing): run "
                                f"`sent train ... --curriculum_stage {stage}` first")
    return read_done(done.parent)


def _train_stage(script, config, model_args, run: RunPaths, stage: int, all_stages: list[int],
                 requested: dict) -> int:
    """One curriculum stage as its own training: init and reference = the previous stage's final weights (the base
    model for stage 1), fresh optimizer and LR schedule; steps and rollouts continue the earlier stages' numbering."""
    import copy

    run_dir = run.dir
    stage_dir = run.stage_dir(stage)
    earlier = [s for s in all_stages if s < stage]
    offset = sum(_stage_steps(run_dir, s) for s in earlier)
    if not done_file(stage_dir).exists():
        config = copy.deepcopy(config)
        config.curriculum_stage = stage
        model_args = copy.deepcopy(model_args)
        if earlier:
            model_args.model_name_or_path = str(final_dir(stage_folder(run_dir, earlier[-1])))
        logger.info("curriculum stage %d of %s: from %s, steps after %d", stage, all_stages,
                    model_args.model_name_or_path, offset)
        rc = _train_part(script, config, model_args, stage_dir, run, offset, requested)
        if rc:
            return rc
    if stage == all_stages[-1] and is_main_process():  # one writer under accelerate
        _finish_run(run_dir, stage_dir, offset + _stage_steps(run_dir, stage))
    return 0


def _finish_run(run_dir: Path, last_stage_dir: Path, total_steps: int) -> None:
    """The run's final/ is the last stage's (hard links where possible, built under a partial name), then the run's
    DONE marker."""
    import shutil

    from sent.io import atomic_folder, link_or_copy

    with atomic_folder(final_dir(run_dir)) as tmp:
        shutil.copytree(final_dir(last_stage_dir), tmp, copy_function=link_or_copy, dirs_exist_ok=True)
    write_done(run_dir, total_steps)


def _train_part(script, config, model_args, out: Path, run: RunPaths, step_offset: int, requested: dict) -> int:
    """Train one part (a whole run, or one curriculum stage) into ``out``; metrics and rollouts go to the run's
    folder ``run.dir``."""
    check_model(model_args.model_name_or_path)
    config.output_dir = str(out)
    dataset = build_train_dataset(script, config)
    check_fits(model_args.model_name_or_path, dataset, config.max_completion_length)
    # The data order is built here (stages x epochs, shuffled per epoch, drop_last like verl) and max_steps makes
    # exactly one pass over it, so TRL must neither reshuffle nor repeat it.
    config.shuffle_dataset = False
    if config.max_steps <= 0:
        config.max_steps = planned_max_steps(config, len(dataset))
    out.mkdir(parents=True, exist_ok=True)
    _write_config(out, script, config, model_args, requested)
    if out != run.dir:
        _write_config(run.dir, script, config, model_args, requested)
    return _train(script, config, model_args, dataset, out, run, step_offset)


def _train(script, config, model_args, dataset, out: Path, run: RunPaths, step_offset: int) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sent.checkpoints import has_plain_weights
    from sent.rewards import make_reward
    from sent.rollouts import RolloutRecorder
    from sent.trainer import MetricsJSONLCallback, SENTTrainer

    checkpoint, step = _resume_point(out, config)
    if checkpoint is not None:
        logger.info("resuming from %s (step %d)", checkpoint, step)
    truncate_jsonl(run.metrics, step_offset + step)  # rows after the checkpoint are redone
    RolloutRecorder(run.rollouts).drop_after(step_offset + step)
    if checkpoint is not None and step >= config.max_steps and has_plain_weights(checkpoint):
        # Killed while final/ was saved: the last step's checkpoint holds the final weights. Resumed there, HF's loop
        # would train one step past max_steps when the data goes on, so final/ is taken from the checkpoint.
        return _finish_part(out, model_args, step, checkpoint=checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path, dtype=model_args.dtype if model_args.dtype not in (None, "auto") else "auto",
        trust_remote_code=config.trust_remote_code, attn_implementation=model_args.attn_implementation)
    reward = make_reward(script.reward_rule, correct=script.reward_correct, incorrect=script.reward_incorrect)
    trainer = SENTTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer, step_offset=step_offset, rollouts_dir=run.rollouts,
                          callbacks=[MetricsJSONLCallback(run.metrics, step_offset=step_offset)])
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.state.global_step < trainer.state.max_steps:
        logger.warning("training stopped at step %d of %d; rerun the same command to resume", trainer.state.global_step,
                       trainer.state.max_steps)
        return 1
    return _finish_part(out, model_args, trainer.state.global_step, trainer=trainer)


def _finish_part(out: Path, model_args, steps: int, trainer=None, checkpoint: str | None = None) -> int:
    """final/ (the trainer's model, or the model files of the last step's ``checkpoint``), then DONE; main process.
    final/ is the next curriculum stage's start and reference model: it is visible only when complete."""
    from accelerate import PartialState

    from sent.checkpoints import export_model
    from sent.io import atomic_folder

    if is_main_process():
        with atomic_folder(final_dir(out)) as tmp:
            if trainer is not None:
                trainer.save_model(str(tmp))
                trainer.processing_class.save_pretrained(tmp)
            else:
                export_model(checkpoint, tmp)
            # The toy model's prompt format travels with it, so `sent eval --template auto` reads the same template.
            prompt_file = Path(model_args.model_name_or_path) / "sent_prompt.json"
            if prompt_file.exists():
                (tmp / "sent_prompt.json").write_text(prompt_file.read_text())
        write_done(out, steps)
    PartialState().wait_for_everyone()
    return 0
