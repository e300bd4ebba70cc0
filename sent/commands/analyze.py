"""``sent analyze bootstrap | linguistic | cross-domain``: the analyses of ``analysis/`` on saved artifacts.

Each subcommand reads artifacts only (rollouts, SE tables, metrics.jsonl, eval/) and writes parquet,
``summary.json`` and a figure (PNG + PDF) to ``<root>/analysis/<name>/`` (or ``--out``). A missing
input raises :class:`sent.io.MissingArtifactError` naming the command that makes it.
See docs/ANALYSIS.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sent.io import atomic_write_json, atomic_write_parquet, require_artifact


logger = logging.getLogger(__name__)


def _default_out(run_dir: Path, name: str) -> Path:
    """``<root>/analysis/<name>/<run>_<seed>`` for a ``<root>/runs/<run>/<seed>`` folder, else ``<run_dir>/analysis/<name>``."""
    if run_dir.parent.parent.name == "runs":
        return run_dir.parents[2] / "analysis" / name / f"{run_dir.parent.name}_{run_dir.name}"
    return run_dir / "analysis" / name


def _settings(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _bootstrap(args) -> int:
    import torch

    from analysis import _io
    from analysis.covariance_bootstrap import bootstrap_rollouts, plot_bootstrap, summarize

    torch.set_num_threads(args.threads)
    df = _io.read_rollouts(args.rollouts, steps=args.steps)
    out = Path(args.out) if args.out else _default_out(_io.run_dir_of(_io.rollouts_dir(args.rollouts)), "bootstrap")
    res = bootstrap_rollouts(df, B=args.B, resample=args.resample, ema=args.ema, top_k_ratios=tuple(args.top_k_ratio),
                             low_entropy_ratio=args.low_entropy_ratio, seed=args.seed)
    settings = _settings(args)
    atomic_write_parquet(out / "bootstrap.parquet", res, metadata=settings)
    summary = {"settings": settings, "cv_flag": 0.30, **summarize(res)}
    atomic_write_json(out / "summary.json", summary)
    figs = plot_bootstrap(res, out / "bootstrap_stability")
    logger.info("bootstrap: %d step rows -> %s (%s)", len(res), out, ", ".join(p.name for p in figs))
    return 0


def _linguistic(args) -> int:
    from analysis import _io
    from analysis.linguistic_filter import class_shares, compare_runs, plot_compare, plot_shares, token_sets

    df = _io.read_rollouts(args.rollouts)
    run_dir = _io.run_dir_of(_io.rollouts_dir(args.rollouts))
    out = Path(args.out) if args.out else _default_out(run_dir, "linguistic")
    tok = token_sets(df, low_entropy_ratio=args.low_entropy_ratio, top_k_ratio=args.top_k_ratio)
    shares = class_shares(tok, language=args.language)
    atomic_write_parquet(out / "class_shares.parquet", shares, metadata={"sets": tok.attrs["sets"], **_settings(args)})
    pooled = shares[shares["step"] == -1].pivot(index="set", columns="category", values="share")
    summary = {"sets": tok.attrs["sets"], "language": args.language, "pooled_shares": pooled.to_dict(orient="index")}
    plot_shares(shares, out / "linguistic_shares")
    if args.compare_run:
        require_artifact(args.compare_run, "sent train --config <sent_content recipe> (token_filter=content)")
        curves, passk, notes = compare_runs({"sent": run_dir, "sent_content": Path(args.compare_run)})
        atomic_write_parquet(out / "compare_curves.parquet", curves)
        atomic_write_parquet(out / "compare_passk.parquet", passk)
        plot_compare(curves, passk, out / "compare_sent_content")
        summary["compare"] = {"notes": notes, "pass_at_k": passk.to_dict(orient="records")}
        for note in notes:
            logger.warning("linguistic compare: %s", note)
    atomic_write_json(out / "summary.json", summary)
    logger.info("linguistic: shares of %d tokens (%s sets) -> %s", len(tok), tok.attrs["sets"], out)
    return 0


def _cross_domain(args) -> int:
    import pandas as pd

    from analysis.cross_domain import plot_cross_domain, se_difficulty, training_comparison

    root = Path(args.root)
    tables = {}
    for domain in (args.domain, args.reference):
        path = require_artifact(root / "se" / f"{domain}.parquet",
                                f"sent semantic-entropy --root {root} --domain {domain}")
        tables[domain] = pd.read_parquet(path)
    corr = se_difficulty(tables, B=args.B, seed=args.seed)
    out = Path(args.out) if args.out else root / "analysis" / "cross_domain"
    atomic_write_parquet(out / "se_difficulty.parquet", corr, metadata=_settings(args))
    curves, passk, notes = training_comparison(root, tuple(args.runs))
    atomic_write_parquet(out / "training_curves.parquet", curves)
    atomic_write_parquet(out / "training_passk.parquet", passk)
    for note in notes:
        logger.warning("cross-domain: %s", note)
    atomic_write_json(out / "summary.json", {
        "settings": _settings(args),
        "se_difficulty": corr.to_dict(orient="records"),
        "training": {"runs": list(args.runs), "pass_at_k": passk.to_dict(orient="records"), "missing": notes},
    })
    plot_cross_domain(tables, corr, out / "cross_domain_se")
    if not curves.empty or not passk.empty:
        from analysis.linguistic_filter import plot_compare

        plot_compare(curves, passk, out / "cross_domain_training")
    logger.info("cross-domain: %d correlations -> %s", len(corr), out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent analyze", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="analysis", required=True)

    b = sub.add_parser("bootstrap", help="bootstrap stability of covariance estimates and the high-cov selection")
    b.add_argument("--rollouts", required=True, help="run folder or its rollouts/ (step_*.parquet, rollout schema)")
    b.add_argument("--out", default=None, help="output folder (default: <root>/analysis/bootstrap/<run>_<seed>)")
    b.add_argument("--B", type=int, default=1000, help="bootstrap replicates")
    b.add_argument("--resample", choices=["responses", "groups"], default="responses",
                   help="responses: within each prompt group, advantages recomputed; groups: whole prompt groups")
    b.add_argument("--ema", type=float, default=0.9, help="EMA factor across steps for the smoothed statistics, [0, 1)")
    b.add_argument("--top-k-ratio", type=float, nargs="+", default=[0.0002],
                   help="fraction(s) of T_low selected as high-covariance (released code: 0.0002)")
    b.add_argument("--low-entropy-ratio", type=float, default=0.8, help="bottom fraction by entropy (paper: 0.8)")
    b.add_argument("--steps", type=int, nargs="+", default=None, help="only these steps")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    b.set_defaults(func=_bootstrap)

    g = sub.add_parser("linguistic", help="function words / punctuation / numbers / content in the token sets")
    g.add_argument("--rollouts", required=True, help="run folder or its rollouts/")
    g.add_argument("--compare-run", default=None, help="a token_filter=content (sent_content) run folder to compare with")
    g.add_argument("--out", default=None, help="output folder (default: <root>/analysis/linguistic/<run>_<seed>)")
    g.add_argument("--language", default="en", help="word lists from analysis.linguistic_filter.LANGUAGES")
    g.add_argument("--low-entropy-ratio", type=float, default=0.8, help="used only when rollouts lack low_entropy")
    g.add_argument("--top-k-ratio", type=float, default=0.0002, help="used only when rollouts lack high_cov")
    g.set_defaults(func=_linguistic)

    c = sub.add_parser("cross-domain", help="does SE predict difficulty outside math; SENT vs GRPO there")
    c.add_argument("--root", default="artifacts/cpu", help="artifact root")
    c.add_argument("--domain", default="relations", help="the non-math SE table se/<domain>.parquet")
    c.add_argument("--reference", default="math", help="the reference SE table se/<reference>.parquet")
    c.add_argument("--runs", nargs="+", default=["xd_grpo", "xd_sent"], help="runs trained on the non-math domain")
    c.add_argument("--out", default=None, help="output folder (default: <root>/analysis/cross_domain)")
    c.add_argument("--B", type=int, default=2000, help="bootstrap replicates for the CIs")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_cross_domain)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
