"""``sent semantic-entropy``: sample M answers per training prompt and write the per-prompt SE table.

    sent semantic-entropy --root artifacts/cpu --domain math --n-prompts 512 --M 8
    sent semantic-entropy --model /models/r1-1.5b --dataset dapo --source dapo.parquet --backend vllm --M 8

Writes ``<out>/<domain>_samples.parquet`` (one row per sampled answer) and ``<out>/<domain>.parquet`` (one row
per prompt), schemas in docs/ARCHITECTURE.md, with ``M``, ``temperature``, ``model``, ``seed``, ``max_new_tokens`` and
``unparsable`` in the parquet metadata. ``<out>`` defaults to ``<root>/se``. SE is computed once with the initial
policy (paper §3.1). Sample at least as long as training's ``max_completion_length``: a cut chain of thought has no
final answer, and the closing log line warns when more than 5% of answers were cut (plan-audit.md finding 4).

Resumable: prompts are processed in chunks; each scored chunk is written atomically to
``<out>/.parts_<domain>/``. A killed job keeps its finished chunks and continues from the first missing one;
the final tables are assembled at the end, and a complete run is skipped. One writer per SE table: the lock
``<out>/.<domain>.lock`` (:mod:`sent.locks`) while the command runs. The chunk loop, the model options and the
prompt rendering are :mod:`sent.sampling_jobs`, shared with ``sent eval``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import pandas as pd

from sent.artifacts import RootPaths, se_file, se_lock_file, se_samples_file
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
from sent.semantic_entropy import TRUNCATED_WARN_RATIO, UNPARSABLE_RULES, answer_quality


logger = logging.getLogger(__name__)

SE_COLUMNS = ["prompt_id", "problem", "answer", "level", "domain", "se", "se_weighted", "n_clusters", "n_samples",
              "n_correct", "accuracy", "n_unparsable", "n_no_answer", "all_no_answer", "n_truncated"]
SAMPLE_COLUMNS = ["prompt_id", "sample_id", "completion", "answer", "cluster", "loglik", "n_tokens", "truncated",
                  "correct"]


def _n_prompts(value: str) -> int | None:
    """``--n-prompts``: an integer >= 1, or 'all' (None)."""
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n-prompts {value!r}: an integer >= 1 or 'all'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--n-prompts {value!r}: an integer >= 1 or 'all'")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent semantic-entropy", description=__doc__.splitlines()[0])
    p.add_argument("--root", default="artifacts/cpu", help="artifact root")
    p.add_argument("--out", default=None, help="output folder (default: <root>/se)")
    p.add_argument("--model", default=None, help="model folder (default: <root>/base), 'smollm2', or a .gguf file")
    p.add_argument("--domain", default="math", help="math | relations (toy data), or any name for --dataset data")
    p.add_argument("--n-prompts", type=_n_prompts, default=512,
                   help="training prompts: the toy generator's size, or a row limit on a dataset; 'all' = every row "
                        "(the paper profiles score all of DAPO-Math-17k)")
    p.add_argument("--dataset", default=None, help="benchmark loader name (e.g. dapo) instead of the toy generator")
    p.add_argument("--source", default=None, help="local file in the dataset's hub schema ('fixture' = shipped one)")
    p.add_argument("--M", type=int, default=8, help="answers sampled per prompt (paper: UNKNOWN; 8 = its G)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--equivalence", choices=["math", "exact"], default=None,
                   help="answer equivalence (default: the model's sent_prompt.json for the domain, else math)")
    p.add_argument("--unparsable", choices=list(UNPARSABLE_RULES), default="shared",
                   help="answers with no final answer (cut, no \\boxed{}): 'shared' = one 'no answer' cluster per "
                        "prompt (default); 'exclude' = SE over the answered samples only, NaN when none answered "
                        "(drop those rows before `sent curriculum`). Paper: not stated")
    p.add_argument("--levels", type=int, nargs="+", default=None,
                   help="toy generator only: difficulty levels to draw (default: all; the smoke profile uses 1 2)")
    p.add_argument("--num-proc", type=int, default=None, help="processes for answer clustering (default: all cores)")
    add_model_args(p, ". SE must sample at least as long as training's max_completion_length (paper: 2048), else "
                      "cut chains of thought have no final answer and the curriculum sorts by 'did not finish'")
    return p


def load_problems(args) -> pd.DataFrame:
    """Training problems in the common schema: the toy generator, or a benchmark loader / common-schema file."""
    if args.dataset is None and args.source is None:
        from sent.data import make_math_problems, make_relation_problems

        makers = {"math": make_math_problems, "relations": make_relation_problems}
        if args.domain not in makers:
            raise ValueError(f"--domain {args.domain!r} has no toy generator ({sorted(makers)}); pass --dataset/--source")
        if args.n_prompts is None:
            raise ValueError("--n-prompts all needs a dataset (--dataset/--source); the toy generator needs a count")
        from sent.data import LEVELS

        levels = tuple(args.levels) if args.levels else LEVELS
        bad = sorted(set(levels) - set(LEVELS))
        if bad:
            raise ValueError(f"--levels {bad} are not toy levels; choose from {list(LEVELS)}")
        return makers[args.domain](args.n_prompts, split="train", seed=args.seed, levels=levels)
    if args.levels:
        raise ValueError("--levels selects toy-generator levels; it does not apply with --dataset/--source")
    if args.dataset is not None:
        from sent.data.benchmarks import load_benchmark

        return load_benchmark(args.dataset, args.source, allow_download=args.allow_download, limit=args.n_prompts)
    from sent.data.benchmarks import read_table

    df = read_table(args.source)
    missing = [c for c in ("prompt_id", "problem", "answer") if c not in df.columns]
    if missing:
        raise ValueError(f"--source {args.source}: columns {missing} missing; give a common-schema file or --dataset")
    df = (df if args.n_prompts is None else df.head(args.n_prompts)).copy()
    df["domain"] = df["domain"] if "domain" in df.columns else args.domain
    df["level"] = df["level"] if "level" in df.columns else -1
    return df


def _chunk_computer(args, model, tokenizer, df: pd.DataFrame, equivalence: str, max_new_tokens: int):
    """``compute(chunk_index, rows)`` for :func:`run_chunks`: sample, then score with :func:`score_dataset`."""
    from sent.generation import sample_completions
    from sent.semantic_entropy import score_dataset

    gold = dict(zip(df["prompt_id"], df["answer"]))

    def compute(i: int, rows: list[int]) -> dict[str, pd.DataFrame]:
        sub = df.iloc[rows]
        groups = sample_completions(model, tokenizer, sub["prompt"].tolist(), args.M, max_new_tokens=max_new_tokens,
                                    temperature=args.temperature, top_p=args.top_p, batch_size=args.batch_size,
                                    seed=args.seed * 100_003 + i, backend=args.backend, progress=False)
        samples = pd.DataFrame([
            {"prompt_id": pid, "sample_id": j, "completion": s.text, "loglik": s.loglik, "n_tokens": s.n_tokens,
             "truncated": not s.finished}  # no EOS: generation stopped at max_new_tokens
            for pid, group in zip(sub["prompt_id"], groups) for j, s in enumerate(group)])
        per_prompt, per_sample = score_dataset(samples, equivalence=equivalence, num_proc=args.num_proc, gold=gold,
                                               unparsable=args.unparsable)
        return {"samples": per_sample[SAMPLE_COLUMNS], "se": per_prompt}

    return compute


def log_summary(table: pd.DataFrame, domain: str) -> dict:
    """Log the SE distribution and its Spearman correlation with ``level`` and with the base error rate."""
    from scipy.stats import spearmanr

    from sent.metrics import entropy_summary

    summary = {"se": entropy_summary(table["se"].to_numpy(dtype=float))}
    for name, other in (("level", table["level"]), ("error_rate", 1.0 - table["accuracy"])):
        ok = other.notna() & table["se"].notna() & (other >= 0 if name == "level" else True)
        x, y = table.loc[ok, "se"].to_numpy(dtype=float), other[ok].to_numpy(dtype=float)
        rho = float(spearmanr(x, y).statistic) if len(x) > 2 and x.std() > 0 and y.std() > 0 else float("nan")
        summary[f"spearman_se_{name}"] = rho
    logger.info("SE (%s, nats): %s; zero-SE share %.2f; Spearman(SE, level) = %.3f; Spearman(SE, error rate) = %.3f",
                domain, {k: round(v, 3) for k, v in summary["se"].items()}, float((table["se"] == 0).mean()),
                summary["spearman_se_level"], summary["spearman_se_error_rate"])
    return summary


def log_answer_quality(table: pd.DataFrame, meta: dict) -> dict:
    """Log how many answers were cut / had no final answer; WARN above :data:`TRUNCATED_WARN_RATIO` cut."""
    q = answer_quality(table)
    logger.info("SE answers: %d of %d prompts had cut answers; %.1f%% of %d answers cut at max_new_tokens=%s, "
                "%.1f%% with no final answer, %.1f%% unparsable (missing answers: %s)", q["prompts_truncated"],
                q["n_prompts"], 100 * q["truncated_ratio"], q["n_answers"], meta["max_new_tokens"],
                100 * q["no_answer_ratio"], 100 * q["unparsable_ratio"], meta["unparsable"])
    if q["truncated_ratio"] > TRUNCATED_WARN_RATIO:
        logger.warning("WARNING: %.1f%% of SE answers were cut at max_new_tokens=%s (more than %.0f%%): raise "
                       "--max-new-tokens to at least the training response length (max_completion_length)",
                       100 * q["truncated_ratio"], meta["max_new_tokens"], 100 * TRUNCATED_WARN_RATIO)
    return q


def main(argv: list[str] | None = None) -> int:
    from sent.generation import resolve_model_spec

    args = build_parser().parse_args(argv)
    if args.M < 1:
        raise ValueError(f"--M must be >= 1 samples per prompt, got {args.M}")
    if args.num_proc is not None and args.num_proc < 1:
        raise ValueError(f"--num-proc must be >= 1 processes (leave it out for all cores), got {args.num_proc}")
    check_sampling_args(args)
    paths = RootPaths(args.root)
    out = Path(args.out) if args.out else paths.se_dir
    args.model = args.model or str(paths.base)
    # a bad --model fails before any work (vLLM resolves hub ids itself, as before)
    resolve_model_spec(args.model, allow_download=args.allow_download or args.backend == "vllm")
    with writer_lock(out, command_line("sent semantic-entropy", argv), lock_file=se_lock_file(out, args.domain),
                     target=se_file(out, args.domain)):  # one writer per SE table (domains are independent)
        return _score(args, out)


def _score(args, out: Path) -> int:
    from sent.io import atomic_write_parquet, remove_partial

    # only this domain's files: other domains' writers share the folder
    for path in remove_partial(out, [se_file(out, args.domain).name, se_samples_file(out, args.domain).name]):
        logger.warning("deleted %s, left by a killed or failed write", path)

    prompt_config = read_prompt_config(args.model)
    equivalence = args.equivalence or prompt_config.get("equivalence", {}).get(args.domain, "math")
    max_new_tokens = args.max_new_tokens or prompt_config.get("max_new_tokens", 1024)
    df = load_problems(args)
    meta = {"equivalence": equivalence, "M": args.M, "temperature": args.temperature, "top_p": args.top_p,
            "model": str(args.model), "seed": args.seed, "max_new_tokens": max_new_tokens, "domain": args.domain,
            "template": args.template, "n_prompts": len(df), "prompts_sha": keys_sha(df["prompt_id"].tolist()),
            "unparsable": args.unparsable}
    se_path, samples_path = se_file(out, args.domain), se_samples_file(out, args.domain)
    if is_complete([samples_path, se_path], meta):
        logger.info("semantic-entropy: %s is complete for these settings; skipping", se_path)
        return 0

    model, tokenizer = open_model(args)
    df = render_for_model(df, tokenizer, args.template, prompt_config).reset_index(drop=True)
    check_context(df, tokenizer, model, max_new_tokens)
    parts = out / f".parts_{args.domain}"
    tables = run_chunks(parts, df["prompt_id"].tolist(), args.chunk_size, meta,
                        _chunk_computer(args, model, tokenizer, df, equivalence, max_new_tokens),
                        names=("samples", "se"), desc=f"semantic entropy ({args.domain})")
    info = df[["prompt_id", "problem", "answer", "level", "domain"]]
    table = info.merge(tables["se"], on="prompt_id", how="left", validate="one_to_one")[SE_COLUMNS]
    atomic_write_parquet(samples_path, tables["samples"], metadata=meta)
    atomic_write_parquet(se_path, table, metadata=meta)  # written last: it marks the run complete
    shutil.rmtree(parts, ignore_errors=True)
    logger.info("wrote %s (%d prompts) and %s (%d samples)", se_path, len(table), samples_path, len(tables["samples"]))
    log_summary(table, args.domain)
    log_answer_quality(table, meta)
    return 0
