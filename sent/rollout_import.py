"""Import rollouts saved by other trainers (verl, TRL, NeMo-RL, open-instruct, prime-rl) into the rollout schema.

:func:`import_rollouts` runs the steps below on a dump read by :mod:`sent.rollout_formats` and writes one
``step_<step:06d>.parquet`` per step (docs/ARCHITECTURE.md, "Rollout schema"), with its provenance under the file's
``sent`` metadata key ``import`` (:func:`step_provenance`) and a summary in ``import.json``:

1. groups (:func:`assign_groups`): explicit ids (open-instruct ``prompt_idx``, a verl ``uid`` field); consecutive
   blocks of ``--group-size`` checked against identical prompts (TRL, prime-rl; the size is inferred from runs of
   identical prompts when not given); identical prompts within a step (verl's text, which has no group id: two
   copies of one prompt in a batch merge, with a warning; NeMo-RL's prompt ids, as NeMo-RL itself groups). A step
   where every group has one member is refused.
2. tokens (:func:`tokenize_rows`): the dump's token ids where it has them (exact); otherwise the prompt is rendered
   (chat template for message lists; for verl's decoded ``input``, the original prompt from ``--prompts DATA`` when
   given) and the response re-tokenised with the checkpoint's tokenizer; rows whose text does not round-trip
   (``decode(encode(text)) != text``) are counted.
3. logp and entropy: the dump's own trainer values when it has both (prime-rl); otherwise a teacher-forced fp32 pass
   of the checkpoint that sampled each step (:mod:`sent.rollout_scoring`: ``step - lag``, back to the first update
   of its generation batch with ``--updates-per-generation``); steps holding identical rows (one TRL generation
   batch logged at several optimizer steps) are refused without ``--updates-per-generation``.
4. advantages, per (step, group), with the source framework's rule (:data:`ADVANTAGE_RULES`, :data:`FORMAT_RULES`);
   the largest difference to advantages the dump recorded is reported.
5. checks before anything is written: finite values, logp <= 0, 0 <= entropy <= log V, equal list lengths, at
   least one group with varying reward per step (``drop_degenerate_steps`` skips such steps instead).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from hashlib import sha1
from pathlib import Path

import numpy as np

from sent.rollout_formats import RawRow, parse_reward_spec, read_dump
from sent.rollout_tokens import load_tokenizer, tokenize_rows


logger = logging.getLogger(__name__)

GROUPING = {"verl": "prompt", "trl": "blocks", "nemo-rl": "prompt", "open-instruct": "ids", "prime-rl": "blocks"}
WHY_MERGED = {
    "verl": "verl dumps no group id, so copies of one prompt in a batch merge into one group (verl's own advantages "
            "kept them apart by uid)",
    "nemo-rl": "NeMo-RL itself groups by identical prompt ids (torch.unique), so its advantages merged them too",
}
ADVANTAGE_RULES = {
    "grpo": "(r - mean_g) / (std_g + eps)",
    "dr_grpo": "r - mean_g (no std scaling: verl norm_adv_by_std_in_grpo=False, TRL scale_rewards='none')",
    "grpo_batch_std": "(r - mean_g) / (std of the whole step + eps) (TRL scale_rewards='batch')",
    "rloo": "(r - mean of the others) / (std of the others), unscaled where that std is 0 (NeMo-RL "
            "use_leave_one_out_baseline + normalize_rewards)",
    "recorded": "the advantages the dump recorded",
}
#: The source framework's advantage rule: eps, the std's ddof and what a group of one gets.
FORMAT_RULES = {
    "verl": {"rule": "grpo", "eps": 1e-6, "ddof": 1, "group_of_one": "mean 0, std 1"},
    "trl": {"rule": "grpo", "eps": 1e-4, "ddof": 1, "group_of_one": "0"},
    "nemo-rl": {"rule": "rloo", "eps": 0.0, "ddof": 0, "group_of_one": "0"},
    "open-instruct": {"rule": "grpo", "eps": 1e-8, "ddof": 0, "group_of_one": "0"},
    "prime-rl": {"rule": "recorded", "eps": 0.0, "ddof": 1, "group_of_one": "0"},
}
#: Rounding allowed above the largest entropy, log V.
LOG_V_TOLERANCE = 1e-4


@dataclass
class ImportSettings:
    fmt: str
    src: str
    out: str
    reward: str | None = None
    group_size: int | None = None
    prompts: str | None = None
    tokenizer: str | None = None
    checkpoints: str | None = None
    base: str | None = None
    checkpoint_lag: int = 1
    updates_per_generation: int = 1
    allow_stale: bool = False
    temperature: float = 1.0
    device: str = "auto"
    token_budget: int = 8192
    advantage: str | None = None
    adv_eps: float | None = None
    add_eos: bool = False
    max_completion_length: int | None = None
    steps: list[int] | None = None
    drop_degenerate_steps: bool = False
    overwrite: bool = False
    progress: bool = True
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        logger.warning("rollouts import: %s", message)
        self.warnings.append(message)


def _file(r: RawRow) -> str:
    return r.where.rsplit(" ", 2)[0]


def _varying(rows: list[RawRow]) -> bool:
    """Some prompt group of the step has two responses with different rewards."""
    rewards = defaultdict(set)
    for r in rows:
        rewards[r.extra["prompt_id"]].add(r.reward)
    return any(len(v) > 1 for v in rewards.values())


def _by_step(rows: list[RawRow]) -> dict[int, list[RawRow]]:
    out = defaultdict(list)
    for r in rows:
        out[r.step].append(r)
    return dict(sorted(out.items()))


def _check_repeated_batches(by_step: dict[int, list[RawRow]], s: ImportSettings) -> None:
    """Steps whose rows are identical hold one generation batch that served several optimizer steps (TRL writes its
    latest generation batch at every logging step), so one checkpoint sampled them all: refused with one update per
    generation batch (``step - lag`` would score each with another checkpoint), a warning otherwise."""
    seen: dict[tuple, list[int]] = defaultdict(list)
    for step, rows in by_step.items():
        seen[tuple((repr(r.prompt_key()), r.completion, tuple(r.completion_ids or ())) for r in rows)].append(step)
    repeats = [steps for steps in seen.values() if len(steps) > 1]
    if not repeats:
        return
    listed = "; ".join(", ".join(map(str, steps)) for steps in repeats[:3])
    if s.updates_per_generation == 1:
        raise ValueError(f"{s.src}: steps {listed} hold identical rollouts: one generation batch served several "
                         f"optimizer steps (TRL: steps_per_generation > gradient_accumulation_steps, or num_iterations"
                         f" > 1), so the weights before its first update sampled them all; pass "
                         f"--updates-per-generation U (optimizer steps per generation batch) to score each step with "
                         f"that checkpoint")
    s.warn(f"steps {listed} hold the same generation batch (--updates-per-generation {s.updates_per_generation}); each "
           f"is imported, scored by the same checkpoint: keep one per batch (--steps) unless repeats are wanted")


# ------------------------------------------------------------------------------------------------ groups


def _infer_group_size(rows: list[RawRow]) -> int:
    runs, prev = [], object()
    for r in rows:
        key = r.prompt_key()
        if runs and key == prev:
            runs[-1] += 1
        else:
            runs.append(1)
        prev = key
    return math.gcd(*runs)


def assign_groups(by_step: dict[int, list[RawRow]], how: str, group_size: int | None, s: ImportSettings) -> dict:
    """Set ``extra["prompt_id"]`` / ``extra["sample_id"]`` of every row; returns ``{step: group sizes}``."""
    if group_size is not None and group_size < 1:
        raise ValueError(f"--group-size {group_size} must be >= 1")
    sizes = {}
    for step, rows in by_step.items():
        groups: dict[str, list[RawRow]] = {}
        if how == "ids" or (how == "prompt" and all(r.group is not None for r in rows)):
            for r in rows:
                if r.group is None:
                    raise ValueError(f"{r.where}: no group id")
                groups.setdefault(f"g{r.group}", []).append(r)
        elif how == "prompt":
            for r in rows:
                groups.setdefault(sha1(repr(r.prompt_key()).encode()).hexdigest()[:12], []).append(r)
            n = np.array([len(g) for g in groups.values()])
            common = group_size or int(np.bincount(n).argmax())
            merged = [len(g) for g in groups.values() if len(g) != common]
            if merged:
                s.warn(f"step {step}: {len(merged)} prompt group(s) of {sorted(set(merged))} responses, not {common}: "
                       f"{WHY_MERGED.get(s.fmt, 'identical prompts merged')}")
        else:
            G = group_size or _infer_group_size(rows)
            if group_size is None:
                logger.info("rollouts import: step %d: --group-size %d inferred from runs of identical prompts", step, G)
            if len(rows) % G:
                raise ValueError(f"{_file(rows[0])}: step {step} has {len(rows)} rows, not a multiple of --group-size "
                                 f"{G}")
            seen = defaultdict(int)
            for b in range(0, len(rows), G):
                block, key = rows[b:b + G], rows[b].prompt_key()
                for r in block[1:]:
                    if r.prompt_key() != key:
                        raise ValueError(f"{r.where}: its prompt differs from that of {rows[b].where}, the first row of "
                                         f"its block of --group-size {G}: the rows are not consecutive prompt groups")
                gid = sha1(repr(key).encode()).hexdigest()[:12]
                seen[gid] += 1
                groups[gid if seen[gid] == 1 else f"{gid}#{seen[gid]}"] = block
        if all(len(g) == 1 for g in groups.values()):
            raise ValueError(f"{_file(rows[0])}: step {step}: every prompt group has one response, so no advantage and "
                             f"no covariance can be formed (check --group-size and the prompts)")
        for gid, members in groups.items():
            for k, r in enumerate(members):
                r.extra["prompt_id"], r.extra["sample_id"] = gid, k
        sizes[step] = sorted(len(g) for g in groups.values())
    return sizes


# ------------------------------------------------------------------------------------------------ advantages


def group_advantages(reward: np.ndarray, group: np.ndarray, rule: str, eps: float, ddof: int,
                     group_of_one: str = "0") -> np.ndarray:
    """Advantages of one step under ``rule`` (:data:`ADVANTAGE_RULES`), per group; float64."""
    if rule not in ADVANTAGE_RULES or rule == "recorded":
        raise ValueError(f"--advantage {rule!r}: one of {', '.join(ADVANTAGE_RULES)}")
    adv = np.zeros(len(reward))
    batch_std = np.std(reward, ddof=1) if len(reward) > 1 else 0.0
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        r = reward[idx]
        if len(r) == 1:
            verl = group_of_one.startswith("mean 0")  # verl: a lone response gets mean 0, std 1
            adv[idx] = (r / (1.0 + eps) if rule == "grpo" else r) if verl and rule in ("grpo", "dr_grpo") else 0.0
        elif rule == "rloo":
            n = len(r)
            base = (r.sum() - r) / (n - 1)
            var = (np.sum(r**2) - r**2) / (n - 1) - base**2
            std = np.nan_to_num(np.sqrt(np.clip(var, 0, None)))
            adv[idx] = np.where(std > 0, (r - base) / np.where(std > 0, std, 1.0), r - base)
        else:
            dev = r - r.mean()
            if rule == "dr_grpo":
                adv[idx] = dev
            elif rule == "grpo_batch_std":
                adv[idx] = dev / (batch_std + eps)
            else:
                adv[idx] = dev / (np.std(r, ddof=ddof) + eps)
    return adv


# ------------------------------------------------------------------------------------------------ the import


def _scored_values(r: RawRow, values, name: str) -> list[float]:
    """The trained tokens' values of a per-span list; a null (prime-rl's non-finite), a positive ``logp`` or a
    negative ``entropy`` raises naming the dump's row."""
    from sent.rollouts import ENTROPY_TOLERANCE, LOGP_TOLERANCE

    vals = values if r.completion_mask is None else [v for v, m in zip(values, r.completion_mask) if m]
    bad = [i for i, v in enumerate(vals) if v is None or not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"{r.where}: column {name!r} is null or non-finite at response token {bad[0]} "
                         f"({len(bad)} tokens)")
    vals = [float(v) for v in vals]
    if name == "logp" and max(vals, default=0.0) > LOGP_TOLERANCE:
        raise ValueError(f"{r.where}: column 'logp' has positive values (max {max(vals):.3g}); a log-probability "
                         f"is <= 0")
    if name == "entropy" and min(vals, default=0.0) < -ENTROPY_TOLERANCE:
        raise ValueError(f"{r.where}: column 'entropy' has negative values (min {min(vals):.3g})")
    return vals


def _rescore(by_step, s: ImportSettings, tok) -> dict[int, dict]:
    """Teacher-forced logp / entropy of every row (``row.extra["logp"]`` / ``["entropy"]``); per-step info."""
    import torch

    from sent.generation import load_model
    from sent.rollout_scoring import resolve_checkpoints, resolve_device, score_sequences, vocab_size

    choices = resolve_checkpoints(s.checkpoints, list(by_step), lag=s.checkpoint_lag, allow_stale=s.allow_stale,
                                  base=s.base, updates_per_generation=s.updates_per_generation)
    device = resolve_device(s.device)
    per_path = defaultdict(list)
    for step, c in choices.items():
        per_path[c.path].append(step)
    info = {}
    for path, steps in per_path.items():
        model = _load_quietly(load_model, path, device, s.progress)
        V = vocab_size(model)
        rows = [r for step in steps for r in by_step[step]]
        for r in rows:
            if not r.prompt_ids:
                raise ValueError(f"{r.where}: empty prompt (no token predicts the first response token)")
            top = max(r.prompt_ids + r.completion_ids)
            if top >= V or min(r.prompt_ids + r.completion_ids) < 0:
                raise ValueError(f"{r.where}: token id {top} is outside the vocabulary of {path} ({V} rows): the "
                                 f"dump was not made with this model's tokenizer")
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        res = score_sequences(model, [(r.prompt_ids, r.completion_ids) for r in rows], temperature=s.temperature,
                              token_budget=s.token_budget, pad_id=pad, progress=s.progress,
                              desc=f"re-scoring with {Path(path).name}")
        for r, (logp, ent) in zip(rows, res):
            r.extra["logp"] = _scored_values(r, logp.tolist(), "logp")
            r.extra["entropy"] = _scored_values(r, ent.tolist(), "entropy")
        for step in steps:
            c = choices[step]
            info[step] = {"checkpoint": c.path, "checkpoint_step": c.checkpoint_step, "sampler_checkpoint_step":
                          c.wanted, "staleness": c.staleness, "vocab_size": V}
            if c.staleness:
                s.warn(f"step {step}: scored with checkpoint {c.checkpoint_step}, {c.staleness} steps older than the "
                       f"sampler ({c.wanted})")
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return info


def _load_quietly(load_model, path: str, device: str, progress: bool):
    """The fp32 model of ``path``; transformers' loading bars only when progress is shown on a terminal (an error
    after loading stays one line on stderr)."""
    import sys

    from transformers.utils import logging as hf_logging

    quiet = not (progress and sys.stderr.isatty())
    was = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        return load_model(path, dtype="float32", device=device)[0]
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()


def _max_abs_diff(pairs) -> float | None:
    diffs = [np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) for a, b in pairs if len(a)]
    return float(max(diffs)) if diffs else None


def step_provenance(s: ImportSettings, step: int, rows: list[RawRow], **parts) -> dict:
    """The ``import`` entry of a step file's ``sent`` metadata (docs/ANALYSIS.md, "Importing rollouts")."""
    return {"format": s.fmt, "source": str(s.src), "source_files": sorted({_file(r) for r in rows}), "step": step,
            "temperature": s.temperature, "checkpoint_lag": s.checkpoint_lag,
            "updates_per_generation": s.updates_per_generation, **parts}


def import_rollouts(s: ImportSettings) -> dict:
    """Read, group, tokenise, re-score, recompute advantages, check and write (see the module docstring); returns
    the summary also written to ``<out>/import.json``."""
    import pandas as pd

    from sent.io import atomic_write_json
    from sent.rollouts import ROLLOUT_FILE, RolloutRecorder, validate_rollouts

    out = Path(s.out)
    old = [p for p in out.glob("step_*.parquet") if ROLLOUT_FILE.match(p.name)] if out.is_dir() else []
    if old and not s.overwrite:
        raise FileExistsError(f"{out} already holds {len(old)} step files; choose another --out or pass --overwrite")
    rows = read_dump(s.fmt, s.src, s.reward)
    if s.steps:
        rows = [r for r in rows if r.step in set(s.steps)]
        if not rows:
            raise ValueError(f"--steps {s.steps}: no such step in {s.src}")
    for r in rows:
        if not math.isfinite(r.reward):
            raise ValueError(f"{r.where}: column 'reward' is NaN or missing (every reward function returned None?)")
    by_step = _by_step(rows)
    _check_repeated_batches(by_step, s)
    sizes = assign_groups(by_step, GROUPING[s.fmt], s.group_size, s)
    degenerate = [step for step, srows in by_step.items() if not _varying(srows)]
    for step in degenerate:
        if not s.drop_degenerate_steps:
            raise ValueError(f"{_file(by_step[step][0])}: step {step}: no prompt group has responses with different "
                             f"rewards, so every advantage is 0 and the covariance is undefined; pass "
                             f"--drop-degenerate-steps to skip such steps")
        s.warn(f"step {step}: constant rewards in every group: skipped (--drop-degenerate-steps)")
        del by_step[step]
    if not by_step:
        raise ValueError(f"{s.src}: every step has constant rewards in every group; nothing to import")
    rows = [r for srows in by_step.values() for r in srows]
    rule = dict(FORMAT_RULES[s.fmt])
    if s.advantage is not None:
        rule["rule"] = s.advantage
    if s.adv_eps is not None:
        rule["eps"] = s.adv_eps
    if rule["rule"] == "recorded" and any(r.advantage is None for r in rows):
        raise ValueError(f"--advantage recorded: {next(r.where for r in rows if r.advantage is None)} has no advantage")
    rescore = not all(r.trainer_logp is not None and r.trainer_entropy is not None for r in rows)
    tok_path = s.tokenizer or (None if not rescore else _first_checkpoint(s, list(by_step)))
    tok = load_tokenizer(tok_path) if tok_path else None
    if tok is None and any(r.completion_ids is None for r in rows):
        raise ValueError("the dump holds text, not token ids: --tokenizer (or --checkpoints) is needed")
    tok_stats = tokenize_rows(rows, tok, s) if tok is not None else {"exact": len(rows), "retokenised": 0}
    if rescore:
        scoring = _rescore(by_step, s, tok)
    else:
        logger.info("rollouts import: the dump holds the trainer's logp and entropy: no re-scoring")
        for r in rows:
            r.extra["logp"] = _scored_values(r, r.trainer_logp, "logp")
            r.extra["entropy"] = _scored_values(r, r.trainer_entropy, "entropy")
        scoring = {}
    token_str: dict[int, str] = {}
    recorder = RolloutRecorder(out, max_rows=max(len(v) for v in by_step.values()))
    written, steps_meta, tables = [], [], []
    for step, srows in by_step.items():
        reward = np.array([r.reward for r in srows])
        gid = np.unique([r.extra["prompt_id"] for r in srows], return_inverse=True)[1]
        if rule["rule"] == "recorded":
            adv = np.array([r.advantage for r in srows], dtype=np.float64)
        else:
            adv = group_advantages(reward, gid, rule["rule"], rule["eps"], rule["ddof"], rule["group_of_one"])
        recorded = [(r.advantage,) for r in srows if r.advantage is not None]
        adv_diff = (float(np.max(np.abs(adv[[r.advantage is not None for r in srows]] - np.array(recorded)[:, 0])))
                    if recorded else None)
        V = scoring.get(step, {}).get("vocab_size")
        table = []
        for r, a in zip(srows, adv):
            ids = [i for i, m in zip(r.completion_ids, r.completion_mask or [True] * len(r.completion_ids)) if m]
            if V is not None and max(r.extra["entropy"], default=0) > math.log(V) + LOG_V_TOLERANCE:
                raise ValueError(f"{r.where}: column 'entropy' exceeds log V = {math.log(V):.4f} (V = {V})")
            if tok is not None:
                for i in ids:
                    if i not in token_str:
                        token_str[i] = tok.decode([i])
            table.append({"step": step, "prompt_id": r.extra["prompt_id"], "sample_id": r.extra["sample_id"],
                          "stage": 1, "reward": r.reward, "advantage": float(a), "token_ids": ids,
                          "tokens": [token_str[i] if tok is not None else f"<{i}>" for i in ids],
                          "logp": r.extra["logp"], "entropy": r.extra["entropy"]})
        validate_rollouts(pd.DataFrame(table), source=f"step {step} of {s.src}")
        meta = step_provenance(
            s, step, srows, **scoring.get(step, {"checkpoint": None}),
            scoring=("teacher-forced fp32 pass of the checkpoint" if rescore
                     else "the dump's trainer logp and entropy (not re-scored)"),
            tokenisation="exact (token ids from the dump)" if tok_stats["retokenised"] == 0 else
            f"re-tokenised with {tok_path}", tokenizer=tok_path, add_eos=s.add_eos,
            reward=srows[0].extra.get("reward_weights") or parse_reward_spec(s.reward),
            reward_source="the recorded advantage (prime-rl exports no reward)" if s.fmt == "prime-rl" else "dump",
            advantage_rule={**rule, "formula": ADVANTAGE_RULES[rule["rule"]]},
            recorded_advantage_max_abs_diff=adv_diff,
            trainer_logp_max_abs_diff=_max_abs_diff((r.extra["logp"], _scored_values(r, r.trainer_logp, "trainer_logp"))
                                                    for r in srows if rescore and r.trainer_logp is not None),
            sampler_logp_max_abs_diff=_max_abs_diff((r.extra["logp"], _scored_values(r, r.sampler_logp, "sampler_logp"))
                                                    for r in srows if r.sampler_logp is not None),
            grouping=GROUPING[s.fmt], group_sizes=sizes[step])
        steps_meta.append(meta)
        tables.append((step, table))
    for (step, table), meta in zip(tables, steps_meta):  # everything checked: now write
        written.append(recorder.write_step(step, table, metadata={"method": None, "seed": None, "run": None,
                                                                  "config": {}, "import": meta}))
    for p in old:  # --overwrite: files of steps this import did not write
        if p not in written:
            p.unlink(missing_ok=True)
    summary = {"settings": {k: v for k, v in asdict(s).items() if k != "warnings"}, "tokens": tok_stats,
               "steps": steps_meta, "skipped_degenerate_steps": degenerate, "warnings": s.warnings,
               "files": [str(p) for p in written]}
    atomic_write_json(out / "import.json", summary)
    return summary


def _first_checkpoint(s: ImportSettings, steps: list[int]) -> str:
    from sent.rollout_scoring import resolve_checkpoints

    choices = resolve_checkpoints(s.checkpoints, steps, lag=s.checkpoint_lag, allow_stale=s.allow_stale, base=s.base,
                                  updates_per_generation=s.updates_per_generation)
    return choices[min(choices)].path


__all__ = ["ImportSettings", "import_rollouts", "assign_groups", "group_advantages", "step_provenance",
           "ADVANTAGE_RULES", "FORMAT_RULES", "GROUPING"]
