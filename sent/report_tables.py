"""Score tables of the reproduction notebooks: Pass@k / Avg@k per run, suite and k over seeds, the paper comparison
table, the ablation table, and their markdown/CSV output.

Input is the evaluation table of :func:`sent.report.load_eval` (one row per sample); method names, paper columns and
ablation groups come from :mod:`sent.report`. Scores are percentages (0-100) like the paper's tables: Pass@k uses the
unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` per problem (``sent.metrics.pass_at_k``);
Avg@k is the mean accuracy over k samples per problem (``sent.metrics.avg_at_k``). Both are averaged over the
problems of a suite, then mean ± sample std over seeds (``n_seeds`` is always reported; one seed is labelled
"single seed"). Estimators that need more samples than were drawn are missing, never extrapolated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import atomic_write_text
from sent.report import ABLATIONS, METHODS, NOT_IN_PAPER, NOT_RUN_NOTE, PAPER_COLUMNS, TABLE_ORDER


def correct_matrices(eval_df: pd.DataFrame) -> dict[tuple[str, int, str], np.ndarray]:
    """``{(run, seed, suite): correct (P, n) bool}``, problems x samples ordered by sample_id.

    Every problem of one (run, seed, suite) must have the same number of samples n.
    """
    out = {}
    for (run, seed, suite), g in eval_df.groupby(["run", "seed", "suite"], sort=True):
        wide = g.pivot_table(index="prompt_id", columns="sample_id", values="correct", aggfunc="first")
        if wide.isna().any().any():
            raise ValueError(f"eval of run={run} seed={seed} suite={suite}: problems have different sample "
                             "counts; re-run `sent eval` so every problem has the same n")
        out[(run, int(seed), suite)] = wide.to_numpy(dtype=bool)  # (P, n)
    return out


def _per_seed_scores(eval_df: pd.DataFrame, ks: Iterable[int], metric: str) -> pd.DataFrame:
    from sent import metrics as M

    rows = []
    for (run, seed, suite), correct in correct_matrices(eval_df).items():
        n = correct.shape[1]
        for k in ks:
            if k > n:  # estimator undefined: shown as missing, never extrapolated
                value = np.nan
            elif metric == "pass@k":
                value = float(np.mean(M.pass_at_k(np.full(len(correct), n), correct.sum(1), k)))
            else:
                value = float(np.mean(M.avg_at_k(correct, k)))
            rows.append(dict(run=run, seed=seed, suite=suite, k=int(k), value=100.0 * value, n_samples=n,
                             n_problems=len(correct)))
    return pd.DataFrame(rows)


def aggregate_seeds(per_seed: pd.DataFrame, by: Sequence[str] = ("run", "suite", "k")) -> pd.DataFrame:
    """Mean, sample std (NaN for one seed) and ``n_seeds`` over seeds of ``value``."""
    g = per_seed.groupby(list(by), sort=False, dropna=False)["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out


def pass_at_k_table(eval_df: pd.DataFrame, ks: Sequence[int] = (8, 16, 32), intervals: bool = True) -> pd.DataFrame:
    """Pass@k (%) per run, suite and k, mean ± std over seeds (long: run, suite, k, mean, std, n_seeds, lo, hi).

    Pass@k per problem = 1 - C(n-c, k)/C(n, k) (unbiased, Chen et al. 2021), averaged over problems;
    NaN where fewer than k samples exist. The per-suite average over suites is the row ``suite="Avg."``.
    ``lo``/``hi``: the cell's 95% interval from the stratified bootstrap over problems and seeds (:mod:`sent.stats`).
    """
    table = _with_avg(aggregate_seeds(_with_seed_avg(_per_seed_scores(eval_df, ks, "pass@k"))))
    return add_intervals(table, eval_df, ks, "pass@k") if intervals else table


def avg_at_k_table(eval_df: pd.DataFrame, ks: Sequence[int] = (8, 16, 32), intervals: bool = True) -> pd.DataFrame:
    """Avg@k (%) per run, suite and k: mean accuracy over k samples per problem, averaged over problems."""
    table = _with_avg(aggregate_seeds(_with_seed_avg(_per_seed_scores(eval_df, ks, "avg@k"))))
    return add_intervals(table, eval_df, ks, "avg@k") if intervals else table


def add_intervals(table: pd.DataFrame, eval_df: pd.DataFrame, ks: Sequence[int], metric: str) -> pd.DataFrame:
    """Add ``lo``/``hi`` (95% stratified bootstrap over problems and seeds, :func:`sent.stats.run_estimate`) to each
    (run, suite, k) row of a score table; the "Avg." row's interval is over all suites and ks. NaN where the cell
    is NaN (fewer samples than k)."""
    from sent import stats

    n_min = int(eval_df.groupby(["run", "seed", "suite", "prompt_id"]).size().min())
    usable = [int(k) for k in ks if int(k) <= n_min]
    scores = {k: stats.problem_scores(eval_df, [k], metric) for k in usable}
    if usable:
        scores["avg"] = stats.problem_scores(eval_df, usable, metric)
    lo, hi = [], []
    for row in table.itertuples():
        key = "avg" if row.suite == "Avg." else (None if pd.isna(row.k) else int(row.k))
        if key not in scores or pd.isna(row.mean):
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        est = stats.run_estimate(scores[key], row.run, suites=None if row.suite == "Avg." else [row.suite])
        lo.append(est.lo)
        hi.append(est.hi)
    return table.assign(lo=lo, hi=hi)


def _with_seed_avg(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Append, per run and seed, the paper's "Avg." = mean over all (suite x k) cells."""
    avg = per_seed.groupby(["run", "seed"], as_index=False)["value"].mean().assign(suite="Avg.", k=pd.NA)
    return pd.concat([per_seed, avg], ignore_index=True)


def _with_avg(agg: pd.DataFrame) -> pd.DataFrame:
    agg["k"] = agg["k"].astype("Int64")
    return agg.reset_index(drop=True)


def pass_at_k_curve(eval_df: pd.DataFrame, ks: Sequence[int] = tuple(range(1, 33))) -> pd.DataFrame:
    """Pass@k (%) for every k in ``ks`` (default 1..32): long table run, suite, k, mean, std, n_seeds."""
    return aggregate_seeds(_per_seed_scores(eval_df, ks, "pass@k"))


def format_cell(mean: float, std: float, n_seeds: int, digits: int = 2, lo: float | None = None,
                hi: float | None = None) -> str:
    """``"12.3 [10.1, 14.6]"`` with a 95% interval (``lo``, ``hi``; one decimal), else ``"12.34 ± 1.20"`` for
    several seeds, ``"12.34"`` for one; ``"n/a"`` when undefined."""
    if mean is None or pd.isna(mean):
        return "n/a"
    if lo is not None and hi is not None and not (pd.isna(lo) or pd.isna(hi)):
        return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"
    if int(n_seeds) > 1 and not pd.isna(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _row_key(suite, k) -> tuple[str, str]:
    return (str(suite), "" if k is None or pd.isna(k) else str(int(k)))


def comparison_table(ours: pd.DataFrame | None, paper: pd.DataFrame | None, ours_label: str = "ours",
                     paper_label: str = "paper") -> pd.DataFrame:
    """Wide, display-ready table: rows (source, benchmark, k), columns = paper column labels.

    ``ours`` is the output of :func:`pass_at_k_table` / :func:`avg_at_k_table` (cells "mean ± std" over
    seeds; plus an ``n_seeds`` column); ``paper`` is :func:`sent.report.load_paper_table`. Our "w/ Mask" cells say the
    method was not run (unidentified in the paper); the paper's "w/ SENT" numbers sit in the released rule's column
    (what the authors ran) and its "SENT, paper formula" cells say "not in paper". Our rows come from our (toy) suites, the paper's from its six benchmarks: rows are never mixed.
    """
    cols = [PAPER_COLUMNS[m] for m in TABLE_ORDER]
    blocks = []
    if ours is not None and len(ours):
        suites = [s for s in dict.fromkeys(ours["suite"]) if s != "Avg."] + ["Avg."]
        rows = {}
        for suite in suites:
            for k in sorted(ours.loc[ours.suite == suite, "k"].dropna().unique()) or [None]:
                rows[_row_key(suite, k)] = {c: "" for c in cols}
        for r in ours.itertuples():
            key = _row_key(r.suite, r.k)
            if key in rows and r.run in PAPER_COLUMNS:
                rows[key][PAPER_COLUMNS[r.run]] = format_cell(r.mean, r.std, r.n_seeds, lo=getattr(r, "lo", None),
                                                              hi=getattr(r, "hi", None))
        for key in rows:
            rows[key][PAPER_COLUMNS["mask"]] = NOT_RUN_NOTE
            nseeds = ours.loc[ours.run.isin(METHODS), "n_seeds"]
            rows[key]["n_seeds"] = "" if nseeds.empty else str(int(nseeds.max()))
        blocks.append(_block(rows, ours_label))
    if paper is not None and len(paper):
        rows = {}
        for r in paper.itertuples():
            key = _row_key(r.benchmark, r.k)
            rows.setdefault(key, {c: "" for c in cols})
            rows[key][r.paper_column] = f"{r.value:.2f}"
        for key in rows:
            rows[key][PAPER_COLUMNS["sent"]] = NOT_IN_PAPER
            rows[key]["n_seeds"] = "unknown"
        blocks.append(_block(rows, paper_label))
    if not blocks:
        raise ValueError("comparison_table needs ours= or paper= (both are empty)")
    return pd.concat(blocks)


def _block(rows: dict, source: str) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples([(source, b, k) for b, k in df.index], names=["source", "benchmark", "k"])
    return df


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub markdown of a DataFrame (index levels become leading columns); no extra dependency."""
    flat = df.reset_index() if any(n is not None for n in df.index.names) else df
    header = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in flat.astype(object).itertuples(index=False):
        cells = ["" if (v is None or (not isinstance(v, str) and pd.isna(v))) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, out_dir: str | os.PathLike, name: str, caption: str = "") -> dict[str, Path]:
    """Write ``<out_dir>/tables/<name>.csv`` and ``.md`` (caption on top of the markdown)."""
    tdir = Path(out_dir) / "tables"
    paths = {"csv": tdir / f"{name}.csv", "md": tdir / f"{name}.md"}
    atomic_write_text(paths["csv"], df.to_csv())
    atomic_write_text(paths["md"], (f"{caption}\n\n" if caption else "") + to_markdown(df))
    return paths


def ablation_table(pass_tab: pd.DataFrame, avg_tab: pd.DataFrame, group: str) -> pd.DataFrame:
    """One ablation group (:data:`ABLATIONS`): rows = configurations, columns = "Avg." Pass@k / Avg@k."""
    if group not in ABLATIONS:
        raise ValueError(f"group={group!r}: use one of {sorted(ABLATIONS)}")
    rows = []
    for run, label in ABLATIONS[group]:
        row = {"configuration": label, "run": run}
        for name, tab in (("Pass@k Avg.", pass_tab), ("Avg@k Avg.", avg_tab)):
            hit = tab[(tab.run == run) & (tab.suite == "Avg.")]
            row[name] = format_cell(*hit[["mean", "std", "n_seeds"]].iloc[0], lo=hit.get("lo", pd.Series([None])).iloc[0],
                                    hi=hit.get("hi", pd.Series([None])).iloc[0]) if len(hit) else "not run"
            if len(hit):
                row["n_seeds"] = int(hit["n_seeds"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows).set_index("configuration")
