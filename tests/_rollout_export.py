"""A native rollout recording (``sent train --record_rollouts_every``) written as verl's and TRL's dumps, laid out as
those frameworks write them (/work/shared/reference/rollout-formats.md), for the round-trip tests.

The recording has token ids, not text: the dumps get the text as the frameworks decode it (``skip_special_tokens``:
the EOS a response ended on is gone, as in a real dump). It has no prompt text either: ``prompts`` maps each
``prompt_id`` to the prompt string the run trained on.

* :func:`write_verl`: ``<out>/<step>.jsonl`` as verl's ``RayPPOTrainer._dump_generations``: ``input`` (the prompt ids
  decoded, special tokens skipped), ``output`` (the response ids likewise), ``gts``, ``score``, ``step``; rows in a
  shuffled order (verl's ``balance_batch`` reorders a batch).
* :func:`write_trl`: ``<out>/completions/completions_<step:05d>.parquet`` as ``GRPOTrainer.log`` with
  ``log_completions=True`` and ``logging_steps=1``: ``step``, ``prompt`` (as the dataset holds it), ``completion``,
  one column per reward function, ``advantage``. TRL writes, at every logging step, its latest *generation batch*
  in generation order (consecutive blocks of ``num_generations``); when one batch serves ``U`` optimizer steps, the
  recording splits it over steps ``kU+1 .. (k+1)U`` and TRL writes the whole batch at each of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _text(tok, ids) -> str:
    return tok.decode([int(i) for i in ids], skip_special_tokens=True)


def write_verl(native: pd.DataFrame, prompts: dict[str, str], answers: dict[str, str], tok, out: Path,
               seed: int = 0) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for step, g in native.groupby("step"):
        order = np.random.default_rng(seed + int(step)).permutation(len(g))
        lines = [json.dumps({"input": _text(tok, tok(prompts[r.prompt_id])["input_ids"]),
                             "output": _text(tok, r.token_ids), "gts": answers[r.prompt_id],
                             "score": float(r.reward), "step": int(step)}, ensure_ascii=False)
                 for r in g.iloc[order].itertuples()]
        files.append(out / f"{int(step)}.jsonl")
        files[-1].write_text("\n".join(lines) + "\n")
    return files


def generation_batches(native: pd.DataFrame, updates_per_generation: int = 1) -> dict[int, pd.DataFrame]:
    """``{optimizer step: the generation batch it trained on}``, each in TRL's generation order (prompt groups in
    order of first appearance, responses by ``sample_id``)."""
    U = updates_per_generation
    batch_of = (native["step"].astype(int) - 1) // U
    out = {}
    for _, rows in native.groupby(batch_of):
        first = pd.Index(rows["prompt_id"]).unique()
        rows = rows.assign(_g=rows["prompt_id"].map({p: i for i, p in enumerate(first)}))
        rows = rows.sort_values(["_g", "sample_id"], kind="stable").drop(columns="_g").reset_index(drop=True)
        if rows.duplicated(["prompt_id", "sample_id"]).any():
            raise ValueError("a prompt appears twice in one generation batch: TRL's blocks cannot be rebuilt")
        for step in sorted(rows["step"].unique()):
            out[int(step)] = rows
    return out


def write_trl(native: pd.DataFrame, prompts: dict[str, str], tok, out: Path, reward_name: str,
              updates_per_generation: int = 1) -> list[Path]:
    folder = out / "completions"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for step, rows in generation_batches(native, updates_per_generation).items():
        table = pd.DataFrame({
            "step": [step] * len(rows), "prompt": [prompts[p] for p in rows["prompt_id"]],
            "completion": [_text(tok, ids) for ids in rows["token_ids"]],
            reward_name: rows["reward"].astype(float).tolist(), "advantage": rows["advantage"].astype(float).tolist(),
        })
        files.append(folder / f"completions_{step:05d}.parquet")
        table.to_parquet(files[-1])
    return files
