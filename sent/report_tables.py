"""Score tables of the reproduction notebooks: Pass@k / Avg@k per run, suite and k over seeds, the paper comparison
table, the ablation table, and their output as CSV, markdown and HTML (:func:`save_table`; pandas Styler: the best
number of a row or column in bold, the paper's rows grey, one missing-value convention, :data:`sent.report.MISSING_VALUES`).
Tables are never drawn as pictures in the notebooks (docs/FIGURES-STYLE.md, "Tables").

Input is the evaluation table of :func:`sent.report.load_eval` (one row per sample); method names, paper columns and
ablation groups come from :mod:`sent.report`. Scores are percentages (0-100) like the paper's tables: Pass@k uses the
unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` per problem (``sent.metrics.pass_at_k``);
Avg@k is the mean accuracy over k samples per problem (``sent.metrics.avg_at_k``). Both are averaged over the
problems of a suite, then mean ± sample std over seeds (``n_seeds`` is always reported; one seed is labelled
"single seed"). Estimators that need more samples than were drawn are missing, never extrapolated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import atomic_write_text
from sent.report import (
    ABLATIONS,
    METHODS,
    MISSING_VALUES,
    NOT_IN_PAPER,
    NOT_RUN,
    NOT_RUN_NOTE,
    PAPER_COLUMNS,
    TABLE_ORDER,
    UNDEFINED,
    UNKNOWN,
    missing_values_note,
)


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
    several seeds, ``"12.34"`` for one; ``"n/a"`` (:data:`sent.report.UNDEFINED`) when undefined."""
    if mean is None or pd.isna(mean):
        return UNDEFINED
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

    ``ours`` is the output of :func:`pass_at_k_table` / :func:`avg_at_k_table` (cells "mean [95% CI]" over
    seeds; plus an ``n_seeds`` column); ``paper`` is :func:`sent.report.load_paper_table`. Every paper column is kept:
    a method we have no evaluation of says "not run" ("not run (unidentified)" for w/ Mask); the paper's "w/ SENT"
    numbers sit in the released rule's column (what the authors ran) and its "SENT (formula)" cells say "not in
    paper"; the paper's seeds are "unknown" (:data:`sent.report.MISSING_VALUES`). Our rows come from our (toy)
    suites, the paper's from its six benchmarks: rows are never mixed.
    """
    cols = [PAPER_COLUMNS[m] for m in TABLE_ORDER]
    blocks = []
    if ours is not None and len(ours):
        suites = [s for s in dict.fromkeys(ours["suite"]) if s != "Avg."] + ["Avg."]
        rows = {}
        for suite in suites:
            for k in sorted(ours.loc[ours.suite == suite, "k"].dropna().unique()) or [None]:
                rows[_row_key(suite, k)] = {c: NOT_RUN for c in cols}
        for r in ours.itertuples():
            key = _row_key(r.suite, r.k)
            if key in rows and r.run in PAPER_COLUMNS:
                rows[key][PAPER_COLUMNS[r.run]] = format_cell(r.mean, r.std, r.n_seeds, lo=getattr(r, "lo", None),
                                                              hi=getattr(r, "hi", None))
        for key in rows:
            rows[key][PAPER_COLUMNS["mask"]] = NOT_RUN_NOTE
            nseeds = ours.loc[ours.run.isin(METHODS), "n_seeds"]
            rows[key]["n_seeds"] = "0" if nseeds.empty else str(int(nseeds.max()))
        blocks.append(_block(rows, ours_label))
    if paper is not None and len(paper):
        rows = {}
        for r in paper.itertuples():
            key = _row_key(r.benchmark, r.k)
            rows.setdefault(key, {c: UNKNOWN for c in cols})
            rows[key][r.paper_column] = f"{r.value:.2f}"
        for key in rows:
            rows[key][PAPER_COLUMNS["sent"]] = NOT_IN_PAPER
            rows[key]["n_seeds"] = UNKNOWN
        blocks.append(_block(rows, paper_label))
    if not blocks:
        raise ValueError("comparison_table needs ours= or paper= (both are empty)")
    return pd.concat(blocks)


def _block(rows: dict, source: str) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples([(source, b, k) for b, k in df.index], names=["source", "benchmark", "k"])
    return df


def cell_value(cell) -> float:
    """The number a display cell starts with (``"83.3 [78.1, 88.5]"`` -> 83.3, ``"**68.57**"`` -> 68.57); NaN for
    text such as "not run"."""
    if isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool):
        return float(cell)
    match = _NUMBER.match(str(cell))
    return float(match.group(1)) if match else float("nan")


_NUMBER = re.compile(r"^\**\s*([+\-−]?\d+(?:\.\d+)?)")
_INTERVAL = re.compile(r"\[\s*([+\-−]?\d+(?:\.\d+)?)\s*,\s*([+\-−]?\d+(?:\.\d+)?)\s*\]")


def cell_interval(cell) -> tuple[float, float]:
    """``(lo, hi)`` of a "mean [lo, hi]" cell; ``(value, value)`` for a plain number; NaNs for text."""
    match = _INTERVAL.search(str(cell)) if isinstance(cell, str) else None
    if match:
        lo, hi = (float(g.replace("−", "-")) for g in match.groups())
        return lo, hi
    value = cell_value(cell)
    return value, value


def best_cells(df: pd.DataFrame, columns: Sequence[str], axis: str = "row") -> pd.DataFrame:
    """True where a cell holds the highest number of its row (``axis="row"``) or column (``"column"``) among
    ``columns`` (ties: all of them), and where a "mean [lo, hi]" cell's interval reaches above the lower end of that
    best cell's interval (not told apart from the best); False elsewhere and for text cells."""
    if axis not in ("row", "column"):
        raise ValueError(f"axis={axis!r}: use 'row' or 'column'")
    cols = [c for c in columns if c in df.columns]
    values = df[cols].map(cell_value).astype(float)
    his = df[cols].map(lambda c: cell_interval(c)[1]).astype(float)
    los = df[cols].map(lambda c: cell_interval(c)[0]).astype(float)
    along = 1 if axis == "row" else 0
    by = 0 if axis == "row" else 1
    top, low = values.max(axis=along), values.min(axis=along)
    is_top = values.eq(top, axis=by) & values.notna()
    top_lo = los.where(is_top).max(axis=along)  # the best cell's lower end (the highest, if tied)
    best = (is_top | his.gt(top_lo, axis=by)) & values.notna()
    same = top.eq(low)  # nothing to tell apart (one number, or all equal): nothing bold
    keep = ~same.to_numpy()
    best = best & (keep[:, None] if axis == "row" else keep[None, :])
    return best.reindex(columns=df.columns, fill_value=False).astype(bool)


def default_best(df: pd.DataFrame) -> tuple[list[str], str] | None:
    """What bold marks in the tables the notebooks write: the best method of each row of a paper-layout table
    (as the paper bolds its tables), the best configuration of each score column of an ablation table."""
    methods = [c for c in df.columns if c in PAPER_COLUMNS.values()]
    if methods:
        return methods, "row"
    scores = [c for c in df.columns if str(c).startswith(("Pass@k", "Avg@k"))]
    return (scores, "column") if scores else None


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index() if any(n is not None for n in df.index.names) else df


def _flat_marks(bold: pd.DataFrame | None, df: pd.DataFrame) -> pd.DataFrame | None:
    """``bold`` laid out like ``_flat(df)``: the index levels become leading columns, never bold."""
    if bold is None:
        return None
    marks = bold.reindex(index=df.index, columns=df.columns, fill_value=False).reset_index(drop=True)
    flat = _flat(df)
    return marks.reindex(columns=flat.columns, fill_value=False).fillna(False).astype(bool)


def _missing_word(v) -> str | None:
    """The missing-value word a cell holds ("not run (unidentified)" holds "not run"), else None."""
    if not isinstance(v, str):
        return None
    return v if v in MISSING_VALUES else (NOT_RUN if v.startswith(NOT_RUN) else None)


def _is_missing_word(v) -> bool:
    return _missing_word(v) is not None


def to_markdown(df: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    """GitHub markdown of a DataFrame (index levels become leading columns); cells where ``bold`` is True are bold;
    no extra dependency."""
    flat = _flat(df)
    marks = _flat_marks(bold, df)
    header = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(flat.astype(object).itertuples(index=False)):
        cells = ["" if (v is None or (not isinstance(v, str) and pd.isna(v))) else str(v) for v in row]
        if marks is not None:
            cells = [f"**{c}**" if c and col in marks.columns and bool(marks[col].iat[i]) else c
                     for c, col in zip(cells, flat.columns)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def style_table(df: pd.DataFrame, caption: str = "", bold: pd.DataFrame | None = None):
    """A pandas ``Styler`` of a display table: bold where ``bold`` is True, the paper's rows (``source`` "paper...")
    on grey in italics, the missing-value words (:data:`sent.report.MISSING_VALUES`) in grey."""
    flat = _flat(df).astype(object).where(_flat(df).notna(), "")
    marks = _flat_marks(bold, df)

    def css(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for col in frame.columns:
            out[col] = [("color: #777777;" if _is_missing_word(v) else "")
                        + ("font-weight: bold;" if marks is not None and bool(marks[col].iat[i]) else "")
                        for i, v in enumerate(frame[col])]
        if "source" in frame.columns:
            paper = frame["source"].astype(str).str.startswith("paper").to_numpy()
            out.loc[paper] = out.loc[paper] + "background-color: #eeeeee; font-style: italic;"
        return out

    styler = flat.style.hide(axis="index").apply(css, axis=None)
    styler = styler.set_table_styles([
        {"selector": "", "props": "border-collapse: collapse; font-family: sans-serif; font-size: 13px;"},
        {"selector": "th, td", "props": "border: 1px solid #cccccc; padding: 3px 8px; text-align: center;"},
        {"selector": "caption", "props": "caption-side: top; text-align: left; padding: 4px 0;"},
    ])
    return styler.set_caption(caption) if caption else styler


def styled(df: pd.DataFrame, caption: str = ""):
    """:func:`style_table` with the notebooks' bold rule (:func:`default_best`): what a notebook displays inline."""
    rule = default_best(df)
    return style_table(df, caption, best_cells(df, *rule) if rule else None)


def save_table(df: pd.DataFrame, out_dir: str | os.PathLike, name: str, caption: str = "",
               best: tuple[Sequence[str], str] | None | bool = True) -> dict[str, Path]:
    """Write ``<out_dir>/tables/<name>.csv``, ``.md`` and ``.html`` (caption on top of the markdown and HTML).

    ``best``: ``(columns, "row" | "column")`` to bold the highest number (:func:`best_cells`) in the markdown and
    HTML; True (default) for :func:`default_best`, None / False for no bold. A caption of a table holding a
    missing-value word gets :func:`sent.report.missing_values_note` appended.
    """
    tdir = Path(out_dir) / "tables"
    paths = {"csv": tdir / f"{name}.csv", "md": tdir / f"{name}.md", "html": tdir / f"{name}.html"}
    rule = default_best(df) if best is True else (best or None)
    bold = best_cells(df, *rule) if rule else None
    if bold is not None and bold.to_numpy().any():
        where = "row" if rule[1] == "row" else "column"
        end = "" if not caption or caption.rstrip().endswith((".", ":")) else "."
        caption = (f"{caption.rstrip()}{end} Bold: the best of each {where}, and every cell whose 95% interval "
                   "reaches above the lower end of the best one's (not told apart).").strip()
    words = {_missing_word(v) for v in df.to_numpy().ravel()} - {None}
    if words:
        end = "" if not caption or caption.rstrip().endswith((".", ":")) else "."
        caption = f"{caption.rstrip()}{end} {missing_values_note(words)}".strip()
    atomic_write_text(paths["csv"], df.to_csv())
    atomic_write_text(paths["md"], (f"{caption}\n\n" if caption else "") + to_markdown(df, bold))
    html = style_table(df, caption, bold).to_html()
    atomic_write_text(paths["html"], f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{name}</title>"
                                     f"</head><body>\n{html}</body></html>\n")
    return paths


def ablation_table(pass_tab: pd.DataFrame, avg_tab: pd.DataFrame, group: str) -> pd.DataFrame:
    """One ablation group (:data:`ABLATIONS`): rows = configurations, columns = "Avg." Pass@k / Avg@k and the seeds
    (0 and "not run" for a configuration without evaluation)."""
    if group not in ABLATIONS:
        raise ValueError(f"group={group!r}: use one of {sorted(ABLATIONS)}")
    rows = []
    for run, label in ABLATIONS[group]:
        row, n_seeds = {"configuration": label, "run": run}, 0
        for name, tab in (("Pass@k Avg.", pass_tab), ("Avg@k Avg.", avg_tab)):
            hit = tab[(tab.run == run) & (tab.suite == "Avg.")]
            row[name] = format_cell(*hit[["mean", "std", "n_seeds"]].iloc[0], lo=hit.get("lo", pd.Series([None])).iloc[0],
                                    hi=hit.get("hi", pd.Series([None])).iloc[0]) if len(hit) else NOT_RUN
            n_seeds = max(n_seeds, int(hit["n_seeds"].iloc[0]) if len(hit) else 0)
        rows.append({**row, "n_seeds": n_seeds})
    return pd.DataFrame(rows).set_index("configuration")
