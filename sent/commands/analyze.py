"""``sent analyze bootstrap | linguistic | cross-domain``: the analyses of ``analysis/`` on saved artifacts.

Each subcommand reads artifacts only (rollouts, SE tables, metrics.jsonl, eval/) and writes parquet,
``summary.json`` and a figure (PNG + PDF) to ``<root>/analysis/<name>/`` (or ``--out``). A missing
input raises :class:`sent.io.MissingArtifactError` naming the command that makes it.
Settings that copy a training setting default to the value the run recorded in its ``config.yaml`` (the trainer's
default when it recorded none): ``--low-entropy-ratio`` is the training knob ``low_entropy_ratio`` and
``--high-cov-ratio`` (alias ``--top-k-ratio``; stored as ``top_k_ratio`` in the outputs) is ``high_cov_ratio``, or
``release_kl_cov_ratio`` for ``method: sent_release``. An explicit flag wins, and the summary's ``settings.sources``
and the log say which source each value came from.
See docs/ANALYSIS.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sent.artifacts import (
    RootPaths,
    RunPaths,
    config_file,
    read_rollouts,
    read_run_config,
    read_se_table,
    rollouts_dir,
    run_dir_of,
)
from sent.io import atomic_write_json, atomic_write_parquet, require_artifact


logger = logging.getLogger(__name__)

#: The token "--high-cov-ratio run" stands for the run's own high-covariance fraction.
RATIO_FLAG = "--high-cov-ratio"
RUN = "run"


def _default_out(run_dir: Path, name: str) -> Path:
    """``<root>/analysis/<name>/<run>_seed<k>`` for a ``<root>/runs/<run>/seed<k>`` folder, else ``<run_dir>/analysis/<name>``."""
    paths = RunPaths.from_dir(run_dir)
    return paths.analysis(name) if paths is not None else run_dir / "analysis" / name


def _settings(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}


def run_gate_settings(run_dir: Path) -> dict[str, tuple[float, str]]:
    """``{"low_entropy_ratio": (value, source), "top_k_ratio": (value, source)}`` the run trained with.

    Read from ``<run_dir>/config.yaml`` (key ``config``: the resolved SENTConfig): ``low_entropy_ratio``, and as the
    high-covariance fraction ``release_kl_cov_ratio`` for ``method: sent_release``, else ``high_cov_ratio``. A value
    the run did not record (no config.yaml, or ``high_cov_threshold`` used instead of a ratio) falls back to the
    trainer's default (:class:`sent.loss_settings.LossSettings`, the same as SENTConfig's)."""
    from sent.loss_settings import LossSettings

    doc = read_run_config(run_dir)
    found = doc is not None
    where = config_file(run_dir)
    doc = doc or {}
    cfg = doc["config"] if isinstance(doc.get("config"), dict) else doc
    top_key = "release_kl_cov_ratio" if cfg.get("method") == "sent_release" else "high_cov_ratio"
    defaults = LossSettings()
    out = {}
    for name, key in (("low_entropy_ratio", "low_entropy_ratio"), ("top_k_ratio", top_key)):
        if cfg.get(key) is not None:
            out[name] = (float(cfg[key]), f"run ({where}: {key})")
        else:
            why = f"config.yaml gives no {key}" if found else "no config.yaml"
            out[name] = (float(getattr(defaults, key)), f"trainer default {key} ({why} in {run_dir})")
    return out


def _resolve_from_run(args, run_dir: Path) -> dict[str, str]:
    """Fill ``args.low_entropy_ratio`` / ``args.top_k_ratio`` left unset (None, or the token ``run``) from the run;
    returns ``{setting: source}`` and logs each."""
    run_values = run_gate_settings(run_dir)
    sources = {}
    value, source = run_values["low_entropy_ratio"]
    if args.low_entropy_ratio is None:
        args.low_entropy_ratio, sources["low_entropy_ratio"] = value, source
    else:
        sources["low_entropy_ratio"] = "--low-entropy-ratio"
    ratio, ratio_source = run_values["top_k_ratio"]
    if isinstance(args.top_k_ratio, list):  # bootstrap: several ratios, "run" among them
        given = args.top_k_ratio
        args.top_k_ratio = list(dict.fromkeys(ratio if r == RUN else r for r in given))
        used = [ratio_source] if RUN in given else []
        sources["top_k_ratio"] = "; ".join(used + ([RATIO_FLAG] if any(r != RUN for r in given) else []))
    elif args.top_k_ratio is None:
        args.top_k_ratio, sources["top_k_ratio"] = ratio, ratio_source
    else:
        sources["top_k_ratio"] = RATIO_FLAG
    for name, source in sources.items():
        logger.info("%s: %s = %s from %s", args.analysis, name, getattr(args, name), source)
    return sources


def _ratio_or_run(text: str):
    return RUN if text == RUN else float(text)


def _bootstrap(args) -> int:
    import torch

    from sent_analysis.covariance_bootstrap import bootstrap_rollouts, plot_bootstrap, summarize

    torch.set_num_threads(args.threads)
    df = read_rollouts(args.rollouts, steps=args.steps)
    run_dir = run_dir_of(rollouts_dir(args.rollouts))
    sources = _resolve_from_run(args, run_dir)
    out = Path(args.out) if args.out else _default_out(run_dir, "bootstrap")
    res = bootstrap_rollouts(df, B=args.B, resample=args.resample, ema=args.ema, top_k_ratios=tuple(args.top_k_ratio),
                             low_entropy_ratio=args.low_entropy_ratio, seed=args.seed)
    settings = {**_settings(args), "sources": sources}
    atomic_write_parquet(out / "bootstrap.parquet", res, metadata=settings)
    summary = {"settings": settings, "cv_flag": 0.30, **summarize(res)}
    atomic_write_json(out / "summary.json", summary)
    figs = plot_bootstrap(res, out / "bootstrap_stability")
    logger.info("bootstrap: %d step rows -> %s (%s)", len(res), out, ", ".join(p.name for p in figs))
    return 0


def _linguistic(args) -> int:
    from sent_analysis.linguistic_filter import class_shares, compare_runs, plot_compare, plot_shares, token_sets

    df = read_rollouts(args.rollouts)
    run_dir = run_dir_of(rollouts_dir(args.rollouts))
    sources = _resolve_from_run(args, run_dir)
    out = Path(args.out) if args.out else _default_out(run_dir, "linguistic")
    tok = token_sets(df, low_entropy_ratio=args.low_entropy_ratio, top_k_ratio=args.top_k_ratio)
    shares = class_shares(tok, language=args.language)
    settings = {**_settings(args), "sources": sources}
    atomic_write_parquet(out / "class_shares.parquet", shares, metadata={"sets": tok.attrs["sets"], **settings})
    pooled = shares[shares["step"] == -1].pivot(index="set", columns="category", values="share")
    summary = {"sets": tok.attrs["sets"], "language": args.language, "pooled_shares": pooled.to_dict(orient="index"),
               "settings": settings}
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
    from sent_analysis.cross_domain import plot_cross_domain, se_difficulty, training_comparison

    root = Path(args.root)
    tables = {domain: read_se_table(root, domain) for domain in (args.domain, args.reference)}
    corr = se_difficulty(tables, B=args.B, seed=args.seed)
    out = Path(args.out) if args.out else RootPaths(root).analysis("cross_domain")
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
        from sent_analysis.linguistic_filter import plot_compare

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
    b.add_argument(RATIO_FLAG, "--top-k-ratio", dest="top_k_ratio", metavar="RATIO", type=_ratio_or_run, nargs="+",
                   default=[RUN],
                   help="the training knob high_cov_ratio (release_kl_cov_ratio for sent_release): fraction(s) of "
                        "T_low selected as high-covariance; 'run' = the run's own value from its config.yaml. "
                        "Default: run")
    b.add_argument("--low-entropy-ratio", type=float, default=None,
                   help="the training knob low_entropy_ratio: bottom fraction by entropy (default: the run's, from "
                        "config.yaml)")
    b.add_argument("--steps", type=int, nargs="+", default=None, help="only these steps")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    b.set_defaults(func=_bootstrap)

    g = sub.add_parser("linguistic", help="function words / punctuation / numbers / content in the token sets")
    g.add_argument("--rollouts", required=True, help="run folder or its rollouts/")
    g.add_argument("--compare-run", default=None, help="a token_filter=content (sent_content) run folder to compare with")
    g.add_argument("--out", default=None, help="output folder (default: <root>/analysis/linguistic/<run>_<seed>)")
    g.add_argument("--language", default="en", help="word lists from sent.tokens.LANGUAGES (register_language adds one)")
    g.add_argument("--low-entropy-ratio", type=float, default=None,
                   help="used only when rollouts lack low_entropy (default: the run's, from config.yaml)")
    g.add_argument(RATIO_FLAG, "--top-k-ratio", dest="top_k_ratio", metavar="RATIO", type=float, default=None,
                   help="the training knob high_cov_ratio (release_kl_cov_ratio for sent_release); used only when "
                        "rollouts lack high_cov (default: the run's, from config.yaml)")
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
