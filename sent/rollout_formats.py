"""Readers of the rollouts other RL trainers save, each as its framework writes it (reference/rollout-formats.md).

Every reader returns :class:`RawRow` objects, one per sampled response, in file order; :mod:`sent.rollout_import`
turns them into the rollout schema (groups, tokens, re-scoring, advantages). What each dump holds:

| format | files | text | token ids | reward | group | advantage | trainer logp / entropy |
|---|---|---|---|---|---|---|---|
| ``verl`` (``trainer.rollout_data_dir``) | ``<dir>/<step>.jsonl`` | ``input`` / ``output`` (special tokens skipped) | no | ``score`` or ``--reward`` | none: identical prompt text | no | no |
| ``trl`` (``log_completions=True``) | ``<output_dir>/completions/completions_<step:05d>.parquet`` | ``prompt`` (str or messages) / ``completion`` | no | one column per reward function | consecutive blocks of ``num_generations`` | ``advantage`` | no |
| ``nemo-rl`` | ``train_data_step<N>.jsonl`` | ``content`` | ``token_ids`` + ``token_loss_mask`` | ``rewards`` | none: identical prompt ids (NeMo-RL's own grouping) | per-token ``advantages`` | ``prev_logprobs`` (no entropy) |
| ``open-instruct`` (``save_traces``) | ``<run>_rollouts_<shard>.jsonl`` | no | ``prompt_tokens`` / ``response_tokens`` | ``reward`` | ``prompt_idx`` | ``advantage`` | sampler ``logprobs`` only |
| ``prime-rl`` (``enable_token_export``) | ``step_<s>/rank_<r>.jsonl`` | no | ``token_ids`` + ``loss_mask`` | none | blocks | per-token ``advantages`` | ``trainer_logprobs`` + ``entropy`` |

NeMo-RL writes one line per sample as a micro-batch of one (every value a one-element list); both that and plain
values are read. A bad file or field raises ``ValueError`` naming the file and the line (or parquet row).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


FORMATS = ("verl", "trl", "nemo-rl", "open-instruct", "prime-rl")


@dataclass
class RawRow:
    """One sampled response as a dump holds it (``None``: the dump does not have it)."""

    step: int
    where: str  # "<file> line N" (JSON lines, 1-based) or "<file> row N" (parquet, 0-based)
    reward: float = math.nan
    prompt: object = None  # str or a list of chat messages
    completion: str | None = None
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None  # the span from the first to the last trained token
    completion_mask: list[bool] | None = None  # trained tokens of the span (None: all)
    group: str | None = None  # an explicit prompt-group id
    advantage: float | None = None  # the advantage the trainer recorded
    trainer_logp: list[float] | None = None
    trainer_entropy: list[float] | None = None
    sampler_logp: list[float] | None = None
    extra: dict = field(default_factory=dict)

    def prompt_key(self):
        """What identifies the prompt: its token ids, else its text (messages as JSON)."""
        if self.prompt_ids is not None:
            return tuple(self.prompt_ids)
        return self.prompt if isinstance(self.prompt, str) else json.dumps(self.prompt, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------ helpers


def parse_reward_spec(spec: str | None) -> dict[str, float] | None:
    """``"score"`` -> ``{"score": 1.0}``; ``"a=0.5,b=0.5"`` -> ``{"a": 0.5, "b": 0.5}``; None stays None."""
    if spec is None:
        return None
    out = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"--reward {spec!r}: weight {weight!r} of {name.strip()!r} is not a number") from None
    if not out:
        raise ValueError(f"--reward {spec!r} names no column")
    return out


def weighted_reward(record: dict, weights: dict[str, float], where: str) -> float:
    """Sum of ``weight * record[column]``; a missing column raises, NaN values are skipped (TRL's ``nansum``), all
    NaN gives NaN."""
    total, seen = 0.0, False
    for name, weight in weights.items():
        if name not in record:
            raise ValueError(f"{where}: no reward column {name!r} (columns: {sorted(record)}); see --reward")
        value = _unwrap(record[name])
        try:
            value = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            raise ValueError(f"{where}: reward column {name!r} holds {value!r}, not a number") from None
        if not math.isnan(value):
            total, seen = total + weight * value, True
    return total if seen else math.nan


def _unwrap(value):
    """A NeMo-RL micro-batch-of-one value ``[x]`` -> ``x`` (scalar fields)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _token_list(value, where: str, name: str, kind=int) -> list | None:
    """A per-token field as a flat list (unwrapping a one-row batch); None stays None."""
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if not isinstance(value, list):
        raise ValueError(f"{where}: field {name!r} must be a list, got {type(value).__name__}")
    if kind is int:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}: field {name!r} must hold integer token ids")
        return list(value)
    return value  # floats; nulls are checked by the caller


def _jsonl(path: Path):
    """``(line number, object)`` of each non-blank line."""
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {i}: not JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path} line {i}: expected a JSON object, got {type(obj).__name__}")
        yield i, obj


def _files(src: Path, pattern: str, what: str, sub: str | None = None) -> list[tuple[int | None, Path]]:
    """``(step from the name or None, file)`` of the files under ``src`` (a file, the folder, or ``src/sub``) whose
    name matches ``pattern`` (group 1, if any, is the step), sorted by step then name."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    if src.is_dir() and sub and (src / sub).is_dir():
        src = src / sub
    candidates = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.is_file())
    rx = re.compile(pattern)
    out = []
    for p in candidates:
        m = rx.fullmatch(p.name)
        if m:
            out.append((int(m.group(1)) if m.groups() and m.group(1) else None, p))
    if not out:
        raise FileNotFoundError(f"{src}: no {what} files ({pattern})")
    return sorted(out, key=lambda t: (t[0] if t[0] is not None else -1, t[1].name))


def _span(ids: list[int], mask: list, where: str, name: str) -> tuple[list[int], list[int], list[bool], int, int]:
    """Split a full sequence by its loss mask: prompt ids (before the first trained token), the span from the first
    to the last trained token, the span's mask, and the span's bounds."""
    m = [bool(x) for x in mask[: len(ids)]]
    if len(m) < len(ids):
        raise ValueError(f"{where}: field {name!r} has {len(mask)} entries for {len(ids)} tokens")
    on = [i for i, x in enumerate(m) if x]
    if not on:
        raise ValueError(f"{where}: field {name!r} marks no trained token (an empty response)")
    a, b = on[0], on[-1] + 1
    return ids[:a], ids[a:b], m[a:b], a, b


def _select(values, a: int, b: int, where: str, name: str, n: int) -> list[float] | None:
    """``values[a:b]`` of a per-token field aligned with the token ids (None when absent)."""
    values = _token_list(values, where, name, kind=float)
    if values is None:
        return None
    if len(values) == n - 1:  # logprobs of tokens 1..n-1 (none for the first token)
        values = [0.0, *values]
    if len(values) < b:
        raise ValueError(f"{where}: field {name!r} has {len(values)} entries for {n} tokens")
    return values[a:b]


# ------------------------------------------------------------------------------------------------ readers


def read_verl(src: Path, reward: dict | None) -> list[RawRow]:
    """``<dir>/<global_step>.jsonl`` (verl ``_dump_generations``): ``input``, ``output``, ``score``, ``step``,
    ``gts`` and the reward extras; no token ids, no group id (an optional ``uid`` field is used when present)."""
    weights = reward or {"score": 1.0}
    rows = []
    for step, path in _files(src, r"(\d+)\.jsonl", "verl generation dump"):
        for i, rec in _jsonl(path):
            where = f"{path} line {i}"
            for name in ("input", "output"):
                if not isinstance(rec.get(name), str):
                    raise ValueError(f"{where}: field {name!r} must be a string (verl writes the decoded text)")
            rows.append(RawRow(step=int(rec.get("step", step)), where=where, reward=weighted_reward(rec, weights, where),
                               prompt=rec["input"], completion=rec["output"],
                               group=str(rec["uid"]) if rec.get("uid") is not None else None,
                               extra={"reward_weights": weights}))
    return rows


def read_trl(src: Path, reward: dict | None) -> list[RawRow]:
    """``completions/completions_<step:05d>.parquet`` (TRL ``log_completions``): ``step``, ``prompt``, ``completion``,
    one column per reward function, extras, ``advantage``; rows in consecutive blocks of ``num_generations``."""
    import pandas as pd

    rows = []
    for step, path in _files(src, r"completions_(\d+)\.parquet", "TRL completions", sub="completions"):
        df = pd.read_parquet(path)
        for name in ("prompt", "completion"):
            if name not in df.columns:
                raise ValueError(f"{path}: no column {name!r} (TRL writes step, prompt, completion, rewards, advantage)")
        weights = reward or _trl_reward_columns(df, path)
        for i, rec in enumerate(df.to_dict(orient="records")):
            where = f"{path} row {i}"
            rows.append(RawRow(step=int(rec.get("step", step)), where=where, reward=weighted_reward(rec, weights, where),
                               prompt=_messages_or_text(rec["prompt"], where, "prompt"),
                               completion=_completion_text(rec["completion"], where),
                               advantage=_float_or_none(rec.get("advantage")), extra={"reward_weights": weights}))
    return rows


def _trl_reward_columns(df, path) -> dict[str, float]:
    import pandas as pd

    known = {"step", "prompt", "completion", "advantage", "image"}
    numeric = [c for c in df.columns if c not in known and pd.api.types.is_numeric_dtype(df[c])]
    if len(numeric) == 1:
        return {numeric[0]: 1.0}
    raise ValueError(f"{path}: {len(numeric)} numeric columns {numeric} may be rewards; say which with --reward COL or "
                     f"--reward 'a=1,b=1' (TRL sums its reward functions times reward_weights, default 1 each)")


def _messages_or_text(value, where: str, name: str):
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        return [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in m.items()} for m in value]
    raise ValueError(f"{where}: column {name!r} must be a string or a list of chat messages, got {type(value).__name__}")


def _completion_text(value, where: str) -> str:
    value = _messages_or_text(value, where, "completion")
    return value if isinstance(value, str) else "".join(str(m.get("content") or "") for m in value)


def _float_or_none(value) -> float | None:
    value = _unwrap(value)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def read_nemo_rl(src: Path, reward: dict | None) -> list[RawRow]:
    """``train_data_step<N>.jsonl`` (NeMo-RL GRPO logging): ``token_ids`` (padded; ``input_lengths`` long),
    ``token_loss_mask``, ``rewards``, per-token ``advantages``, ``generation_logprobs`` (sampler) and
    ``prev_logprobs`` (the trainer's, no entropy); one line per sample; no group id."""
    weights = reward or {"rewards": 1.0}
    rows = []
    for step, path in _files(src, r"train_data_step(\d+)\.jsonl", "NeMo-RL train data"):
        for i, rec in _jsonl(path):
            where = f"{path} line {i}"
            if "token_ids" not in rec or "token_loss_mask" not in rec:
                raise ValueError(f"{where}: no 'token_ids' / 'token_loss_mask' (NeMo-RL releases that log only "
                                 f"'content' cannot be split into prompt and response)")
            ids = _token_list(rec["token_ids"], where, "token_ids")
            length = _unwrap(rec.get("input_lengths"))
            ids = ids[: int(length)] if isinstance(length, (int, float)) else ids
            mask = _token_list(rec["token_loss_mask"], where, "token_loss_mask", kind=float)
            prompt, span, smask, a, b = _span(ids, mask, where, "token_loss_mask")
            adv = _select(rec.get("advantages"), a, b, where, "advantages", len(ids))
            rows.append(RawRow(
                step=step, where=where, reward=weighted_reward(rec, weights, where), prompt_ids=prompt,
                completion_ids=span, completion_mask=smask,
                advantage=float(adv[0]) if adv is not None else None,
                trainer_logp=_select(rec.get("prev_logprobs"), a, b, where, "prev_logprobs", len(ids)),
                sampler_logp=_select(rec.get("generation_logprobs"), a, b, where, "generation_logprobs", len(ids)),
                extra={"trainer_logp_kind": "prev_logprobs", "reward_weights": weights}))
    return rows


def read_open_instruct(src: Path, reward: dict | None) -> list[RawRow]:
    """``<run>_rollouts_<shard>.jsonl`` (open-instruct ``save_traces``): ``step``, ``sample_idx``, ``prompt_idx``,
    ``prompt_tokens``, ``response_tokens``, ``reward``, ``advantage``, ``finish_reason``, sampler ``logprobs``."""
    weights = reward or {"reward": 1.0}
    rows = []
    for _, path in _files(src, r".*_rollouts_(\d+)\.jsonl", "open-instruct rollout"):
        for i, rec in _jsonl(path):
            where = f"{path} line {i}"
            for name in ("step", "prompt_idx", "prompt_tokens", "response_tokens"):
                if name not in rec:
                    raise ValueError(f"{where}: no field {name!r} (open-instruct RolloutRecord)")
            rows.append(RawRow(
                step=int(rec["step"]), where=where, reward=weighted_reward(rec, weights, where),
                prompt_ids=_token_list(rec["prompt_tokens"], where, "prompt_tokens"),
                completion_ids=_token_list(rec["response_tokens"], where, "response_tokens"),
                group=str(rec["prompt_idx"]), advantage=_float_or_none(rec.get("advantage")),
                sampler_logp=_token_list(rec.get("logprobs"), where, "logprobs", kind=float),
                extra={"finish_reason": rec.get("finish_reason"), "reward_weights": weights}))
    return rows


def read_prime_rl(src: Path, reward: dict | None) -> list[RawRow]:
    """``token_exports/step_<s>/rank_<r>.jsonl`` (prime-rl ``enable_token_export``): ``token_ids``, ``loss_mask``,
    per-token ``advantages``, ``inference_logprobs``, ``trainer_logprobs``, ``entropy`` (non-finite as null); no
    reward, no text, no group id (groups are blocks). The reward is the recorded advantage (see the importer)."""
    if reward is not None:
        raise ValueError("--reward: prime-rl token exports hold no reward columns")
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    if (src / "token_exports").is_dir():
        src = src / "token_exports"
    step_dirs = [src] if re.fullmatch(r"step_\d+", src.name) else sorted(
        (p for p in src.iterdir() if p.is_dir() and re.fullmatch(r"step_\d+", p.name)), key=lambda p: int(p.name[5:]))
    if not step_dirs:
        raise FileNotFoundError(f"{src}: no step_<s>/ folders of prime-rl token exports")
    rows = []
    for d in step_dirs:
        step = int(d.name[5:])
        for _, path in _files(d, r"rank_(\d+)\.jsonl", "prime-rl token export"):
            for i, rec in _jsonl(path):
                where = f"{path} line {i}"
                for name in ("token_ids", "loss_mask", "advantages"):
                    if name not in rec:
                        raise ValueError(f"{where}: no field {name!r} (prime-rl token export)")
                ids = _token_list(rec["token_ids"], where, "token_ids")
                prompt, span, smask, a, b = _span(ids, rec["loss_mask"], where, "loss_mask")
                adv = _select(rec["advantages"], a, b, where, "advantages", len(ids))
                rows.append(RawRow(
                    step=step, where=where, reward=float(adv[0]) if adv[0] is not None else math.nan,
                    prompt_ids=prompt, completion_ids=span, completion_mask=smask,
                    advantage=float(adv[0]) if adv[0] is not None else None,
                    trainer_logp=_select(rec.get("trainer_logprobs"), a, b, where, "trainer_logprobs", len(ids)),
                    trainer_entropy=_select(rec.get("entropy"), a, b, where, "entropy", len(ids)),
                    sampler_logp=_select(rec.get("inference_logprobs"), a, b, where, "inference_logprobs", len(ids)),
                    extra={"trainer_logp_kind": "trainer_logprobs",
                           "reward_weights": "the recorded advantage (no reward in prime-rl exports)"}))
    return rows


READERS = {"verl": read_verl, "trl": read_trl, "nemo-rl": read_nemo_rl, "open-instruct": read_open_instruct,
           "prime-rl": read_prime_rl}


def read_dump(fmt: str, src: str | Path, reward: str | None = None) -> list[RawRow]:
    """The rows of a ``fmt`` dump under ``src`` (see the table in the module docstring)."""
    if fmt not in READERS:
        raise ValueError(f"--from {fmt!r}: unknown format; one of {', '.join(FORMATS)}")
    rows = READERS[fmt](Path(src), parse_reward_spec(reward))
    if not rows:
        raise ValueError(f"{src}: the {fmt} dump holds no rows")
    return rows
