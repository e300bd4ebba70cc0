"""What ``sent semantic-entropy`` and ``sent eval`` share: sample answers for a table of prompts, resumably.

* :func:`add_model_args` / :func:`check_sampling_args` / :func:`open_model`: the model and sampling options of both
  commands (checked before any model loads), and the
  ``(model, tokenizer)`` they name (HF backend via :func:`sent.generation.load_model`, or a vLLM engine);
* :func:`read_prompt_config` / :func:`render_for_model`: the prompt each problem is sampled from (the model folder's
  own template from ``sent_prompt.json``, or the paper's instruction inside the tokenizer's chat template);
* :func:`run_chunks` / :func:`is_complete` / :func:`keys_sha`: prompts are processed in chunks, each chunk's tables
  written atomically to a parts folder, so a killed job keeps its finished chunks; a finished artifact carries its
  settings in the parquet metadata, so a changed setting reruns the step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd


logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- model and options
def add_model_args(p: argparse.ArgumentParser, max_new_tokens_help: str = "") -> None:
    """Sampling options shared by ``semantic-entropy`` and ``eval``; ``max_new_tokens_help`` is appended to the
    ``--max-new-tokens`` help."""
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="completion budget (default: the toy model's sent_prompt.json value, else 1024)"
                        + max_new_tokens_help)
    p.add_argument("--batch-size", type=int, default=64, help="sequences per generate call (hf backend)")
    p.add_argument("--chunk-size", type=int, default=64, help="prompts per resumable part file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="vllm needs the optional extra and a GPU")
    p.add_argument("--template", default="auto",
                   help="prompt template: auto (model's sent_prompt.json, else paper+chat template), toy, paper, dapo "
                        "(DAPO-Math-17k's 'Answer:' prompt, + chat template), or a literal containing {problem}")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16 | auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--allow-download", action="store_true", help="allow hub downloads of models and datasets")


def check_sampling_args(args) -> None:
    """Reject sampling options that cannot work before any model is loaded (``ValueError``, one line each): the
    same rules :func:`sent.generation.sample_completions` applies, checked up front."""
    checks = [
        ("max_new_tokens", lambda v: v is None or v >= 1, "must be >= 1 tokens"),
        ("batch_size", lambda v: v >= 1, "must be >= 1 sequences per generate call"),
        ("chunk_size", lambda v: v >= 1, "must be >= 1 prompts per part file"),
        ("threads", lambda v: v is None or v >= 1, "must be >= 1"),
        ("temperature", lambda v: v > 0, "must be > 0 (sampling only; a small value is near-greedy)"),
        ("top_p", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        ("top_k", lambda v: v >= 0, "must be >= 0 (0 disables top-k)"),
    ]
    for name, ok, rule in checks:
        if hasattr(args, name) and not ok(getattr(args, name)):
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)} {rule}")


def open_model(args):
    """``(model, tokenizer)`` for the chosen backend; the vLLM backend builds its engine from the path."""
    import torch

    from sent.generation import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.backend == "vllm":
        from transformers import AutoTokenizer

        from sent.generation import import_vllm

        vllm = import_vllm()
        llm = vllm.LLM(model=str(args.model), seed=args.seed, dtype=args.dtype if args.dtype != "float32" else "auto")
        return llm, AutoTokenizer.from_pretrained(str(args.model), local_files_only=not args.allow_download)
    return load_model(args.model, dtype=args.dtype, device=device, allow_download=args.allow_download)


# ---------------------------------------------------------------------------------------------------- prompts
def read_prompt_config(model_path: str) -> dict:
    """``sent_prompt.json`` of a toy model folder (template, equivalence, max_new_tokens), or ``{}``."""
    path = Path(model_path) / "sent_prompt.json"
    return json.loads(path.read_text()) if path.exists() else {}


def render_for_model(df: pd.DataFrame, tokenizer, template: str, prompt_config: dict) -> pd.DataFrame:
    """Add the ``prompt`` column. ``template="auto"``: the model folder's own template (``sent_prompt.json``),
    else the paper's instruction inside the tokenizer's chat template (plain when it has none). ``"paper"`` and
    ``"dapo"`` (DAPO-Math-17k's ``Answer:`` wording) go inside the chat template; other names and literals do not."""
    from sent.data import render_prompts
    from sent.data.benchmarks import render_paper_prompts

    if template == "auto":
        template = prompt_config.get("template", "paper")
    if template == "dapo":  # answers are still extracted from \boxed{} (sent.answers.extract_answer)
        logger.warning("template 'dapo' asks for an 'Answer:' line, but SE clustering and eval scoring read the last "
                       "\\boxed{}: answers without a box count as 'no final answer'")
    if template in ("paper", "dapo"):
        return render_paper_prompts(df, tokenizer, template)
    return render_prompts(df, template)


def refuse_overlong(prompt_ids: list, lengths: list[int], limit: int | None, new_tokens: int, *,
                    what: str = "prompts", knob: str = "--max-new-tokens") -> None:
    """Refuse prompts that cannot fit: prompt tokens + ``new_tokens`` beyond the model's ``limit`` positions.

    The rule (eval, SE and training alike) is to refuse, never to truncate: a truncated problem is a different
    problem, and a model run past its positions either fails deep inside attention or silently degrades. The
    message counts the prompts that do not fit and names the longest.
    """
    if not limit:
        return
    if new_tokens >= limit:
        raise ValueError(f"{knob.lstrip('-').replace('-', '_')}={new_tokens} leaves no room for a prompt in the "
                         f"model's {limit} positions")
    over = [i for i, n in enumerate(lengths) if n + new_tokens > limit]
    if over:
        worst = max(over, key=lambda i: lengths[i])
        raise ValueError(
            f"{len(over)} of {len(lengths)} {what} do not fit the model's {limit} positions with "
            f"{knob.lstrip('-').replace('-', '_')}={new_tokens} (longest: {prompt_ids[worst]}, {lengths[worst]} "
            f"prompt tokens); lower {knob} or leave these problems out")


def check_context(df: pd.DataFrame, tokenizer, model, max_new_tokens: int) -> None:
    """:func:`refuse_overlong` for rendered problems about to be sampled (special tokens counted: an upper bound)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if df.empty:
        return
    lengths = [len(ids) for ids in tokenizer(df["prompt"].tolist(), add_special_tokens=True)["input_ids"]]
    refuse_overlong(df["prompt_id"].tolist(), lengths, limit, max_new_tokens)


# ------------------------------------------------------------------------------------------ resumable chunks
def keys_sha(items: list[str]) -> str:
    """Short hash of a list of keys (prompt ids), stored in the metadata to tell which prompts a table holds."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def run_chunks(parts_dir: Path, keys: list[str], chunk_size: int, meta: dict,
               compute: Callable[[int, list[int]], dict[str, pd.DataFrame]], names: tuple[str, ...],
               desc: str = "chunks") -> dict[str, pd.DataFrame]:
    """Run ``compute(chunk_index, row_indices)`` over chunks of ``keys`` and return the concatenated tables.

    Each chunk's tables go to ``parts_dir/part_{i:05d}.{name}.parquet`` (atomic writes, ``names[-1]`` written last).
    A chunk whose files all exist with metadata equal to ``meta`` + the chunk's key hash is reused, not recomputed.
    """
    from tqdm.auto import tqdm

    from sent.io import atomic_write_parquet, read_parquet_metadata

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 prompts per part file, got {chunk_size}")
    chunks = [list(range(s, min(s + chunk_size, len(keys)))) for s in range(0, len(keys), chunk_size)]
    out: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    reused = 0
    for i, rows in enumerate(tqdm(chunks, desc=desc, unit="chunk")):
        chunk_meta = {**meta, "chunk": i, "keys_sha": keys_sha([keys[r] for r in rows])}
        paths = {name: parts_dir / f"part_{i:05d}.{name}.parquet" for name in names}
        if all(p.exists() for p in paths.values()) and all(
                read_parquet_metadata(p) == json.loads(json.dumps(chunk_meta, default=str)) for p in paths.values()):
            tables = {name: pd.read_parquet(p) for name, p in paths.items()}
            reused += 1
        else:
            tables = compute(i, rows)
            for name in names:  # the last name is the chunk's completion marker
                atomic_write_parquet(paths[name], tables[name], metadata=chunk_meta)
        for name in names:
            out[name].append(tables[name])
    if reused:
        logger.info("%s: reused %d of %d finished chunks from %s", desc, reused, len(chunks), parts_dir)
    return {name: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame() for name, frames in out.items()}


def is_complete(paths: list[Path], meta: dict) -> bool:
    """True when every path exists and carries exactly ``meta`` (so a changed setting reruns the step)."""
    from sent.io import read_parquet_metadata

    want = json.loads(json.dumps(meta, default=str))
    return all(p.exists() for p in paths) and all(read_parquet_metadata(p) == want for p in paths)
