"""``sent eval``: sample k answers per problem on each suite; write per-sample tables and Pass@k / Avg@k.

    sent eval --model artifacts/cpu/runs/sent/seed0/final --suites toy-aime24,toy-math500 --k 32
    sent eval --model /models/r1-1.5b --out evals/base --suites paper --source-dir data/ --backend vllm

One writer per output folder: ``<out>/.lock`` (:mod:`sent.locks`) while the command runs.

Writes ``<out>/<suite>.parquet`` (one row per sample: ``prompt_id, suite, sample_id, completion, answer, gold,
correct, length``; metadata ``k, temperature, top_p, model, seed``) and ``<out>/summary.json`` with, per suite and
for k' in {1, 8, 16, 32} up to ``--k``: unbiased Pass@k' (Chen et al. 2021), "any of the first k'" Pass@k' and
Avg@k' (``sent.metrics``). The paper's protocol (reference/paper.md §3): temperature 1.0, top_p 0.9, top_k 50,
k in {8, 16, 32}; whether its Pass@k is the unbiased or the any-of-k estimate is UNKNOWN, so both are reported.

Suites: the toy suites (``toy-aime24`` ... from ``sent.data.SUITES``), the paper's benchmarks (``aime24``,
``aime25``, ``amc23``, ``math500``, ``olympiad``, ``minerva``; ``paper`` = all six; ``champ``) read from
``--source-dir/<suite>.jsonl`` (``--source-dir fixtures`` = the shipped hand-made fixtures) or, with
``--allow-download``, from the hub. A suite whose table is complete for the same settings is skipped; a half-done
suite resumes from its finished chunks (``<out>/.parts_<suite>/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from sent.artifacts import FINAL, eval_file, eval_folder, eval_summary_file
from sent.locks import command_line, writer_lock
from sent.sampling_jobs import (
    add_model_args,
    check_context,
    check_sampling_args,
    is_complete,
    keys_sha,
    open_model,
    read_prompt_config,
    render_for_model,
    run_chunks,
)


logger = logging.getLogger(__name__)

EVAL_COLUMNS = ["prompt_id", "suite", "sample_id", "completion", "answer", "gold", "correct", "length"]
REPORT_KS = (1, 8, 16, 32)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder (a run's final/ or the base model), 'smollm2', "
                                                   "or a .gguf file")
    p.add_argument("--out", default=None, help="output folder (default: <model>/../eval when model is a run's final/)")
    p.add_argument("--suites", default="toy", help="comma list; 'toy' = the six toy suites, 'paper' = the six "
                                                   "paper benchmarks")
    p.add_argument("--source-dir", default=None,
                   help="folder with <suite>.jsonl|parquet|json files in the hub schema; 'fixtures' = shipped ones")
    p.add_argument("--n-problems", type=int, default=None, help="keep the first N problems per suite (smoke runs)")
    p.add_argument("--k", type=int, default=32, help="samples per problem (paper: 8, 16, 32)")
    p.add_argument("--temperature", type=float, default=1.0, help="paper: 1.0")
    p.add_argument("--top-p", type=float, default=0.9, help="paper: 0.9")
    p.add_argument("--top-k", type=int, default=50, help="paper: 50 (0 disables)")
    add_model_args(p)
    return p


def expand_suites(spec: str) -> list[str]:
    from sent.data import EXTRA_SUITES, SUITES
    from sent.data.benchmarks import BENCHMARKS, PAPER_SUITES

    names: list[str] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        names += list(SUITES) if item == "toy" else list(PAPER_SUITES) if item == "paper" else [item]
    valid = set(SUITES) | set(EXTRA_SUITES) | set(BENCHMARKS) | {"champ"}
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise ValueError(f"--suites: unknown {bad or spec!r}; valid: toy, paper, {', '.join(sorted(valid))}")
    return list(dict.fromkeys(names))


def load_problems(suite: str, args) -> pd.DataFrame:
    """Problems of one suite in the common schema."""
    from sent.data import EXTRA_SUITES, SUITES, load_suite
    from sent.data.benchmarks import FIXTURES_DIR, find_source, load_benchmark

    if suite in SUITES or suite in EXTRA_SUITES:
        df = load_suite(suite)
    else:
        source = None
        if args.source_dir:
            source = find_source(suite, FIXTURES_DIR if args.source_dir == "fixtures" else args.source_dir)
        df = load_benchmark(suite, source, allow_download=args.allow_download)
    return (df if args.n_problems is None else df.head(args.n_problems)).reset_index(drop=True)


def summarize(table: pd.DataFrame, k: int) -> dict:
    """Pass@k (unbiased and any-of-first-k), Avg@k for k' in REPORT_KS up to ``k``, from one suite's table."""
    from sent.metrics import avg_at_k, pass_at_k, pass_at_k_any

    table = table.sort_values(["prompt_id", "sample_id"])
    n_unknown = int(table["correct"].isna().sum())
    correct = table["correct"].fillna(False).astype(bool)  # an unusable gold counts as a miss
    matrix = np.stack([g.to_numpy() for _, g in correct.groupby(table["prompt_id"], sort=False)])  # (P, k)
    n = np.full(len(matrix), matrix.shape[1])
    c = matrix.sum(axis=1)
    out = {"n_problems": int(len(matrix)), "n_samples": int(matrix.size), "unusable_gold_samples": n_unknown,
           "mean_length": float(table["length"].mean())}
    for kk in sorted({x for x in REPORT_KS if x <= k} | {k}):
        if kk > matrix.shape[1]:
            continue
        out[f"pass@{kk}"] = float(np.mean(pass_at_k(n, c, kk)))
        out[f"pass@{kk}_any"] = float(pass_at_k_any(matrix, kk))
        out[f"avg@{kk}"] = float(avg_at_k(matrix, kk))
    return out


def _compute_suite(args, model, tokenizer, df: pd.DataFrame, suite: str, max_new_tokens: int):
    from sent.answers import extract_answer, is_correct
    from sent.generation import sample_completions

    def compute(i: int, rows: list[int]) -> dict[str, pd.DataFrame]:
        sub = df.iloc[rows]
        groups = sample_completions(model, tokenizer, sub["prompt"].tolist(), args.k, max_new_tokens=max_new_tokens,
                                    temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                    batch_size=args.batch_size, seed=args.seed * 100_003 + i, backend=args.backend,
                                    progress=False, loglik=False)  # eval checks answers only
        records = []
        for (_, row), group in zip(sub.iterrows(), groups):
            for j, s in enumerate(group):
                records.append({"prompt_id": row["prompt_id"], "suite": suite, "sample_id": j, "completion": s.text,
                                "answer": extract_answer(s.text), "gold": str(row["answer"]),
                                "correct": is_correct(s.text, str(row["answer"]), domain=row["domain"]),
                                "length": s.n_tokens})
        table = pd.DataFrame(records, columns=EVAL_COLUMNS)
        table["correct"] = table["correct"].astype("boolean")  # None = unusable gold
        return {"eval": table}

    return compute


def default_out(model: str) -> Path:
    path = Path(model)
    if path.name == FINAL:
        return eval_folder(path.parent)
    raise ValueError(f"--out is required unless --model is a run's final/ folder (got {model}); e.g. "
                     "--out artifacts/cpu/eval/base for the base model")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise ValueError(f"--k must be >= 1 samples per problem, got {args.k}")
    if args.n_problems is not None and args.n_problems < 1:
        raise ValueError(f"--n-problems must be >= 1 (leave it out for every problem), got {args.n_problems}")
    check_sampling_args(args)
    out = Path(args.out) if args.out else default_out(args.model)
    suites = expand_suites(args.suites)
    from sent.generation import resolve_model_spec

    # a bad --model fails before any work (vLLM resolves hub ids itself, as before)
    resolve_model_spec(args.model, allow_download=args.allow_download or args.backend == "vllm")
    with writer_lock(out, command_line("sent eval", argv)):  # one writer per eval folder
        return _evaluate(args, out, suites)


def _evaluate(args, out: Path, suites: list[str]) -> int:
    from sent.io import atomic_write_json, atomic_write_parquet, remove_partial

    for path in remove_partial(out):  # this command holds the folder's lock
        logger.warning("deleted %s, left by a killed or failed write", path)

    prompt_config = read_prompt_config(args.model)
    max_new_tokens = args.max_new_tokens or prompt_config.get("max_new_tokens", 1024)
    base_meta = {"k": args.k, "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
                 "model": str(args.model), "seed": args.seed, "max_new_tokens": max_new_tokens,
                 "template": args.template}
    model = tokenizer = None
    summary_path = eval_summary_file(out)
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for suite in suites:
        df = load_problems(suite, args)
        meta = {**base_meta, "suite": suite, "n_problems": len(df), "prompts_sha": keys_sha(df["prompt_id"].tolist())}
        path = eval_file(out, suite)
        if is_complete([path], meta):
            logger.info("eval: %s is complete for these settings; skipping", path)
        else:
            if model is None:
                model, tokenizer = open_model(args)
            df = render_for_model(df, tokenizer, args.template, prompt_config)
            check_context(df, tokenizer, model, max_new_tokens)
            parts = out / f".parts_{suite}"
            tables = run_chunks(parts, df["prompt_id"].tolist(), args.chunk_size, meta,
                                _compute_suite(args, model, tokenizer, df, suite, max_new_tokens),
                                names=("eval",), desc=f"eval {suite}")
            atomic_write_parquet(path, tables["eval"], metadata=meta)
            shutil.rmtree(parts, ignore_errors=True)
        summary[suite] = {**summarize(pd.read_parquet(path), args.k), "settings": meta}
        logger.info("%s: %s", suite, {k: round(v, 4) for k, v in summary[suite].items() if k.startswith(("pass", "avg"))})
        atomic_write_json(summary_path, summary)
    return 0
