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
the final tables are assembled at the end, and a complete run is skipped. Chunk helpers here are shared with
``sent eval``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from sent.semantic_entropy import TRUNCATED_WARN_RATIO, UNPARSABLE_RULES, answer_quality


logger = logging.getLogger(__name__)

SE_COLUMNS = ["prompt_id", "problem", "answer", "level", "domain", "se", "se_weighted", "n_clusters", "n_samples",
              "n_correct", "accuracy", "n_unparsable", "n_no_answer", "all_no_answer", "n_truncated"]
SAMPLE_COLUMNS = ["prompt_id", "sample_id", "completion", "answer", "cluster", "loglik", "n_tokens", "truncated",
                  "correct"]


# ------------------------------------------------------------------------------------ shared with `sent eval`


def _sha(items: list[str]) -> str:
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
        chunk_meta = {**meta, "chunk": i, "keys_sha": _sha([keys[r] for r in rows])}
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


def read_prompt_config(model_path: str) -> dict:
    """``sent_prompt.json`` of a toy model folder (template, equivalence, max_new_tokens), or ``{}``."""
    path = Path(model_path) / "sent_prompt.json"
    return json.loads(path.read_text()) if path.exists() else {}


def render(df: pd.DataFrame, tokenizer, template: str, prompt_config: dict) -> pd.DataFrame:
    """Add the ``prompt`` column. ``template="auto"``: the model folder's own template (``sent_prompt.json``),
    else the paper's instruction inside the tokenizer's chat template (plain when it has none). ``"paper"`` and
    ``"dapo"`` (DAPO-Math-17k's ``Answer:`` wording) go inside the chat template; other names and literals do not."""
    from sent.data import render_prompts
    from sent.data.benchmarks import render_paper_prompts

    if template == "auto":
        template = prompt_config.get("template", "paper")
    if template == "dapo":  # answers are still extracted from \boxed{} (sent.semantic_entropy.extract_answer)
        logger.warning("template 'dapo' asks for an 'Answer:' line, but SE clustering and eval scoring read the last "
                       "\\boxed{}: answers without a box count as 'no final answer'")
    if template in ("paper", "dapo"):
        return render_paper_prompts(df, tokenizer, template)
    return render_prompts(df, template)


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


def open_model(args):
    """``(model, tokenizer)`` for the chosen backend; the vLLM backend builds its engine from the path."""
    import torch

    from sent.generation import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.backend == "vllm":
        from transformers import AutoTokenizer

        from sent.generation import _import_vllm

        vllm = _import_vllm()
        llm = vllm.LLM(model=str(args.model), seed=args.seed, dtype=args.dtype if args.dtype != "float32" else "auto")
        return llm, AutoTokenizer.from_pretrained(str(args.model), local_files_only=not args.allow_download)
    return load_model(args.model, dtype=args.dtype, device=device, allow_download=args.allow_download)


# ------------------------------------------------------------------------------------------------- the command


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
        return makers[args.domain](args.n_prompts, split="train", seed=args.seed)
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
    from sent.io import atomic_write_parquet

    args = build_parser().parse_args(argv)
    if args.M < 1:
        raise ValueError(f"--M must be >= 1 samples per prompt, got {args.M}")
    root = Path(args.root)
    out = Path(args.out) if args.out else root / "se"
    args.model = args.model or str(root / "base")
    prompt_config = read_prompt_config(args.model)
    equivalence = args.equivalence or prompt_config.get("equivalence", {}).get(args.domain, "math")
    max_new_tokens = args.max_new_tokens or prompt_config.get("max_new_tokens", 1024)
    df = load_problems(args)
    meta = {"equivalence": equivalence, "M": args.M, "temperature": args.temperature, "top_p": args.top_p,
            "model": str(args.model), "seed": args.seed, "max_new_tokens": max_new_tokens, "domain": args.domain,
            "template": args.template, "n_prompts": len(df), "prompts_sha": _sha(df["prompt_id"].tolist()),
            "unparsable": args.unparsable}
    se_path, samples_path = out / f"{args.domain}.parquet", out / f"{args.domain}_samples.parquet"
    if is_complete([samples_path, se_path], meta):
        logger.info("semantic-entropy: %s is complete for these settings; skipping", se_path)
        return 0

    model, tokenizer = open_model(args)
    df = render(df, tokenizer, args.template, prompt_config).reset_index(drop=True)
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
