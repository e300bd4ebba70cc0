"""Does semantic entropy (SE) measure difficulty outside math? And does SENT help there?

SENT orders training questions by the base model's semantic entropy (reference/paper.md §1.2-1.3)
on the premise that high-SE questions are harder. The paper tests this on math only. This module
compares a non-math domain (``se/<domain>.parquet``, answers clustered by string equality) with
math (``se/math.parquet``, clustered by math equivalence):

* per domain, Spearman's rho of ``se`` with the base model's error rate ``1 - accuracy`` and with
  ``level`` (when known), with percentile bootstrap confidence intervals over prompts
  (:func:`spearman_bootstrap`: resampled index matrix ``(B, n)``, mid-ranks per row with
  ``scipy.stats.rankdata(axis=1)``, row-wise Pearson of ranks; no Python loop over replicates);
* SENT vs GRPO trained on the non-math domain (runs ``xd_sent`` and ``xd_grpo``): entropy curves
  from metrics.jsonl and Pass@k from eval/, when those artifacts exist.

Caveats: ``accuracy`` comes from the same M samples as ``se`` (both are functions of one answer
histogram), so part of the correlation is mechanical: with one dominant correct cluster SE is low
and accuracy high. Level is the independent check. String clustering splits answers that are
equivalent but written differently, which inflates SE for verbose answer formats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sent.artifacts import iter_runs, save_figure


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of ``x``, ``y`` (B, n); ties get mid-ranks; NaN for constant rows."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def spearman_bootstrap(x, y, *, B: int = 2000, ci: float = 0.95, seed: int = 0) -> dict:
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap CI over pairs.

    rho = Pearson correlation of the mid-ranks (Spearman 1904). Replicates resample the n pairs with
    replacement; the CI is the ``(1-ci)/2`` and ``(1+ci)/2`` quantiles of the replicate rhos
    (replicates where one side is constant are dropped). Returns rho, ci_low, ci_high, n, B_used.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3:
        return {"rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": n, "B_used": 0}
    rho = float(_rowwise_spearman(x[None], y[None])[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(B, n))  # (B, n) resampled pair indices
    reps = _rowwise_spearman(x[idx], y[idx])
    reps = reps[np.isfinite(reps)]
    lo, hi = (np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2]) if len(reps) else (np.nan, np.nan))
    return {"rho": rho, "ci_low": float(lo), "ci_high": float(hi), "n": n, "B_used": int(len(reps))}


def se_difficulty(tables: dict[str, pd.DataFrame], *, B: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Spearman of SE with error rate and level per domain; one row per (domain, measure, target).

    ``tables`` maps a domain name to its SE table (docs/ARCHITECTURE.md "Semantic entropy tables").
    Measures: ``se`` and ``se_weighted`` (when not all NaN); targets: ``error_rate`` = 1 - accuracy
    and ``level`` (when some level is known, i.e. not -1).
    """
    rows = []
    for domain, t in tables.items():
        missing = [c for c in ("se", "accuracy", "level") if c not in t.columns]
        if missing:
            raise ValueError(f"SE table of domain {domain!r} misses column(s) {missing}; see docs/ARCHITECTURE.md")
        targets = {"error_rate": 1.0 - t["accuracy"].to_numpy(np.float64)}
        lvl = t["level"].to_numpy(np.float64)
        if (lvl >= 0).sum() >= 3:
            targets["level"] = np.where(lvl >= 0, lvl, np.nan)
        measures = {"se": t["se"].to_numpy(np.float64)}
        if "se_weighted" in t.columns and t["se_weighted"].notna().any():
            measures["se_weighted"] = t["se_weighted"].to_numpy(np.float64)
        for mname, m in measures.items():
            for tname, target in targets.items():
                res = spearman_bootstrap(m, target, B=B, seed=seed)
                rows.append({"domain": domain, "measure": mname, "target": tname, **res,
                             "se_mean": float(np.nanmean(m)), "accuracy_mean": float(t["accuracy"].mean())})
    return pd.DataFrame(rows)


def training_comparison(root: str | Path, runs: tuple[str, ...] = ("xd_grpo", "xd_sent")) -> tuple:
    """Entropy curves and Pass@k of the non-math runs (all seeds found); notes name missing artifacts."""
    from sent_analysis.linguistic_filter import compare_runs

    root = Path(root)
    folders, notes = {}, []
    for run in runs:
        seeds = iter_runs(root, [run])
        if not seeds:
            notes.append(f"{run}: no {root}/runs/{run}/seed*/ (make it with "
                         f"`bash reproduce/run_all.sh --profile <profile> --only train eval`)")
        for paths in seeds:
            folders[paths.name] = paths.dir
    curves, passk, more = compare_runs(folders) if folders else (pd.DataFrame(columns=["run", "step", "key", "value"]),
                                                                  pd.DataFrame(columns=["suite", "k", "pass_at_k", "n_prompts", "run"]), [])
    return curves, passk, notes + more


def plot_cross_domain(tables: dict[str, pd.DataFrame], corr: pd.DataFrame, path_stem) -> list[Path]:
    """SE vs error rate scatter per domain and rho with CI per (domain, target) (PNG + PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables) + 1, figsize=(4.2 * (len(tables) + 1), 3.8))
    for ax, (domain, t) in zip(axes, tables.items()):
        ax.scatter(t["se"], 1 - t["accuracy"], s=8, alpha=0.5)
        ax.set(title=f"{domain} (n={len(t)})", xlabel="semantic entropy (nats)", ylabel="base error rate")
    sub = corr[corr["measure"] == "se"].reset_index(drop=True)
    labels = [f"{d}\n{t}" for d, t in zip(sub["domain"], sub["target"])]
    err = np.vstack([sub["rho"] - sub["ci_low"], sub["ci_high"] - sub["rho"]])
    axes[-1].errorbar(range(len(sub)), sub["rho"], yerr=np.nan_to_num(err), fmt="o", capsize=4)
    axes[-1].axhline(0, color="k", lw=0.6)
    axes[-1].set_xticks(range(len(sub)), labels, fontsize=7)
    axes[-1].set(ylabel="Spearman rho (95 % bootstrap CI)", ylim=(-1.05, 1.05), title="does SE predict difficulty?")
    return save_figure(fig, path_stem)
