"""Plotting helpers of the reproduction notebooks (figures only; loading and tables are in sent.report).

Every helper takes DataFrames from :mod:`sent.report` loaders and returns a matplotlib Figure that meets
docs/FIGURES-STYLE.md: labelled axes with units, legends outside the data with the paper's method names, training
curves against one x unit (:data:`sent.report.X_UNIT`, generation batches) with the stage starts of every curriculum
run, axes in the metric's range, "single seed" in the title when only one seed ran, and a note on the figure wherever
something is missing (:func:`add_note`). Figures use matplotlib's constrained layout, so nothing sticks out of
them; :mod:`sent.figure_checks` tests that. Token figures (heat map, word clouds) are in :mod:`sent.report_tokens`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sent.figure_checks import NOTE_GID, STAGE_GID
from sent.report import (
    X_UNIT,
    add_generation_batches,
    method_color,
    method_label,
    order_runs,
    seeds_note,
    stage_boundaries,
)
from sent.stats import seed_band


#: Ranges of the metrics the notebooks plot: bands are clipped to them and the y axis never leaves them.
VALUE_RANGES: dict[str, tuple[float | None, float | None]] = {
    "entropy/all": (0.0, None), "entropy/low": (0.0, None), "entropy/high_cov": (0.0, None), "entropy": (0.0, None),
    "length/mean": (0.0, None), "completions/mean_length": (0.0, None), "share/low": (0.0, 1.0),
    "share/high_cov": (0.0, 1.0), "pass@k": (0.0, 100.0), "avg@k": (0.0, 100.0),
}


def _title(text: str, n_seeds: int) -> str:
    """The title with its seeds note; runs with fewer seeds than ``n_seeds`` say so in their legend labels."""
    return f"{text} ({seeds_note(n_seeds)})"


def new_figure(width: float = 7.5, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kw):
    """``plt.subplots`` with constrained layout (legends and notes outside the axes stay inside the figure)."""
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kw)


def add_note(ax, text: str, where: str = "center"):
    """Write why a panel (or part of it) is empty on the panel itself (``gid="note"``, :mod:`sent.figure_checks`).

    ``where="center"`` for a panel with nothing to show; ``"below"`` puts it under the x axis, clear of the data.
    """
    if where == "center":
        return ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, wrap=True,
                       color="#444444", gid=NOTE_GID,
                       bbox=dict(boxstyle="round", fc="#f4f4f4", ec="#bbbbbb"))
    return ax.annotate(text, (0, 0), xycoords="axes fraction", xytext=(0, -36), textcoords="offset points",
                       ha="left", va="top", fontsize=8, color="#444444", gid=NOTE_GID, annotation_clip=False)


def legend_outside(ax, handles=None, labels=None, title: str | None = None, fontsize: float = 8):
    """The legend right of the axes, outside the data (constrained layout makes room for it)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     fontsize=fontsize, title=title, title_fontsize=fontsize, frameon=False)


def clip_to(values, bounds):
    """``values`` clipped to ``(lo, hi)`` (either may be None)."""
    lo, hi = bounds if bounds else (None, None)
    return np.clip(np.asarray(values, dtype=float), -np.inf if lo is None else lo, np.inf if hi is None else hi)


def limit_axis(ax, bounds):
    """Keep the y axis inside ``bounds`` (no negative entropy, no Pass@k above 100)."""
    if not bounds:
        return
    y0, y1 = ax.get_ylim()
    lo, hi = bounds
    ax.set_ylim(y0 if lo is None else max(lo, y0), y1 if hi is None else min(hi, y1))


def with_batches(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with ``generation_batch`` (added per run and seed by :func:`sent.report.add_generation_batches` when
    the loader did not)."""
    if "generation_batch" in metrics.columns:
        return metrics
    return pd.concat([add_generation_batches(g) for _, g in metrics.groupby(["run", "seed"], sort=False)],
                     ignore_index=True)


def draw_stage_lines(ax, metrics: pd.DataFrame, runs: Sequence[str],
                     colors: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """Dotted lines, in each run's colour (``colors`` overrides), at every stage start of every curriculum run in
    ``runs`` (a run whose ``stage`` changes); runs that share a boundary alternate their colours along one line.
    The stages are named on a top axis. Returns ``(run, x, stage)`` per line drawn."""
    drawn: dict[int, list[tuple[str, int]]] = {}
    for run in runs:
        one = metrics[metrics["run"] == run]
        if one.empty or "stage" not in one.columns:
            continue
        one = one[one["seed"] == one["seed"].min()]
        for x, stage in stage_boundaries(one, x="generation_batch"):
            drawn.setdefault(x, []).append((run, stage))
    out = []
    for x, items in drawn.items():
        n = len(items)
        for i, (run, stage) in enumerate(items):
            dash = (2 * i, (2.0, 2.0 * (n - 1) if n > 1 else 2.0))  # alternate colours when runs share x
            color = (colors or {}).get(run) or method_color(run)
            ax.axvline(x - 0.5, color=color, ls=dash, lw=1.3, gid=f"{STAGE_GID}:{run}:{stage}")
            out.append((run, x, stage))
    if drawn:
        top = ax.secondary_xaxis("top")
        xs = sorted(drawn)
        top.set_xticks([x - 0.5 for x in xs], [f"stage {max(s for _, s in drawn[x])}" for x in xs], fontsize=8)
        top.tick_params(length=2, pad=1)
    return out


def run_curve(m: pd.DataFrame, key: str, smooth: int = 1):
    """Per-seed values of one run per generation batch (mean over its updates), smoothed within each stage; None
    when all NaN."""
    vals = m[["seed", "generation_batch", key]].copy()
    vals[key] = pd.to_numeric(vals[key], errors="coerce")
    wide = vals.pivot_table(index="generation_batch", columns="seed", values=key, aggfunc="mean")
    if wide.empty or not np.isfinite(wide.to_numpy(dtype=float)).any():
        return None
    if smooth > 1:  # within each curriculum stage: a stage start stays a step, not a ramp
        stage = (pd.to_numeric(m["stage"], errors="coerce").groupby(m["generation_batch"]).first().reindex(wide.index)
                 if "stage" in m.columns else pd.Series(1, index=wide.index))
        wide = wide.groupby(stage.fillna(-1).to_numpy()).transform(
            lambda col: col.rolling(smooth, center=True, min_periods=1).mean())
    return wide


def plot_curves(metrics: pd.DataFrame, key: str, ylabel: str, runs: Sequence[str] | None = None,
                title: str = "", smooth: int = 1, ax=None, labels=None,
                value_range: tuple[float | None, float | None] | None = None, legend: bool = True):
    """One line per run of ``metrics[key]`` per generation batch: mean over seeds, shaded ± 1 s.d. when several.

    x is :data:`sent.report.X_UNIT`: each run's optimizer updates are averaged within their generation batch, so
    runs with different updates per batch share the axis. ``smooth`` > 1: centred rolling mean over that many
    batches (said in the x label). Every curriculum run in ``runs`` gets its stage starts
    (:func:`draw_stage_lines`). A requested run without metrics, or without values of ``key``, is listed in the
    legend as such; a panel with nothing to show says so. ``value_range`` (default :data:`VALUE_RANGES`) clips the
    bands and the axis.
    """
    bounds = value_range if value_range is not None else VALUE_RANGES.get(key)
    requested = order_runs(runs if runs is not None else metrics["run"].unique())
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(8.0, 4.2)
    metrics = with_batches(metrics) if len(metrics) else metrics
    shown, missing, curves = [], [], []
    for run in requested:
        label = (labels or {}).get(run, method_label(run))
        m = metrics[metrics["run"] == run] if len(metrics) else metrics
        if m.empty:
            missing.append(f"{label}: not run")
            continue
        wide = run_curve(m, key, smooth) if key in m.columns else None
        if wide is None:
            missing.append(f"{label}: no {key} logged")
            continue
        curves.append((run, label, wide))
    n_seeds = max([wide.shape[1] for _, _, wide in curves], default=1)
    for run, label, wide in curves:
        if wide.shape[1] < n_seeds:  # the title states the most seeds; a run with fewer says its own
            label = f"{label} ({seeds_note(wide.shape[1])})"
        long = wide.reset_index().melt(id_vars="generation_batch", var_name="seed", value_name=key).assign(run=run)
        band = seed_band(long, "generation_batch", key).set_index("generation_batch")
        finite = band["mean"].dropna()
        if len(finite) and (finite == 0).all():
            label = f"{label} (0 throughout)"
        ax.plot(band.index, clip_to(band["mean"], bounds), color=method_color(run), label=label, lw=1.6)
        if wide.shape[1] > 1:
            ax.fill_between(band.index, clip_to(band["lo"], bounds), clip_to(band["hi"], bounds), color=method_color(run),
                            alpha=0.15, lw=0)
        shown.append(run)
    stages = draw_stage_lines(ax, metrics, shown) if shown else []
    if not shown:
        add_note(ax, "nothing to show:\n" + "\n".join(missing))
        ax.set(xticks=[], yticks=[])
    limit_axis(ax, bounds)
    ax.set_xlabel(f"{X_UNIT}" + (f" (rolling mean over {smooth} batches within a stage)" if smooth > 1 else ""))
    if shown:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    # wrapped to the axes (the legend takes the right of the figure): a long title would leave the figure
    width = max(30, int(ax.get_position().width * fig.get_figwidth() * 0.8 / (0.55 * 12 / 72)))
    full = _title(title or key, n_seeds)
    if len(full) > width:  # the seeds note on its own line
        full = f"{textwrap.fill(title or key, width)}\n({seeds_note(n_seeds)})"
    ax.set_title(full, pad=18 if stages else 6)
    ax.grid(alpha=0.3)
    if legend:
        handles, names = ax.get_legend_handles_labels()
        if stages:
            handles.append(matplotlib.lines.Line2D([], [], color="#555555", ls=":", lw=1.3))
            names.append("stage start (run's colour)")
        for text in missing if shown else []:
            handles.append(matplotlib.lines.Line2D([], [], ls="none"))
            names.append(text)
        legend_outside(ax, handles, names)
    return fig


def table_figure(table: pd.DataFrame, title: str, fontsize: float = 7.5):
    """A display table as a figure, for a slide: every cell in full, the figure sized from the longest text of each
    column (markdown and HTML, :func:`sent.report_tables.save_table`, are the tables themselves)."""
    flat = table.reset_index() if any(n is not None for n in table.index.names) else table
    text = flat.map(lambda v: v if isinstance(v, str) else ("" if pd.isna(v) else str(v)))
    header = [str(c) for c in flat.columns]
    chars = [max([len(h)] + [len(s) for s in text[c]]) for h, c in zip(header, flat.columns)]
    char_in = fontsize * 0.62 / 72  # width of one character of the default sans font, inches
    widths = np.array([c * char_in + 0.16 for c in chars])
    n_rows = len(text) + 1
    row_in = fontsize * 2.0 / 72
    fig = plt.figure(figsize=(widths.sum() + 0.3, n_rows * row_in + 0.6))
    ax = fig.add_axes((0.15 / (widths.sum() + 0.3), 0.05, widths.sum() / (widths.sum() + 0.3), 0.8))
    ax.axis("off")
    tab = ax.table(cellText=text.values, colLabels=header, colWidths=list(widths / widths.sum()), loc="upper center",
                   cellLoc="center", bbox=(0, 0, 1, 1))
    tab.auto_set_font_size(False)
    tab.set_fontsize(fontsize)
    if "source" in flat.columns:  # grey = the paper's numbers, white = ours
        for i, src in enumerate(flat["source"], start=1):
            if str(src).startswith("paper"):
                for j in range(len(header)):
                    tab[i, j].set_facecolor("#eeeeee")
    fig.suptitle(title, fontsize=9, y=0.97)
    return fig


def add_caption(fig, text: str, fontsize: float = 7.5):
    """A note under all panels of ``fig`` (constrained layout keeps it inside the figure)."""
    return fig.supxlabel(text, fontsize=fontsize, color="#444444")


def se_histogram(se: pd.DataFrame, manifest: dict, bins: int = 30, ax=None):
    """Histogram of training-set semantic entropy (nats) with the curriculum stage split marked."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(7.0, 4.0)
    values = pd.to_numeric(se["se"], errors="coerce").dropna()
    if len(values):
        ax.hist(values, bins=bins, color="#4c72b0", alpha=0.85)
    else:
        add_note(ax, "no finite SE value in the table")
    stages = manifest.get("stages", [])
    for st in stages[:-1]:
        ax.axvline(st["se_max"], color="#d62728", ls="--", lw=1.2, label="stage split" if st is stages[0] else None,
                   gid=f"{STAGE_GID}:split:{st['index']}")
    if stages:
        top = ax.secondary_xaxis("top")
        top.set_xticks([(st["se_min"] + st["se_max"]) / 2 for st in stages],
                       [f"stage {st['index']} (n={st['size']})" for st in stages], fontsize=8)
        top.tick_params(length=0)
    ax.set_xlabel("semantic entropy of the prompt (nats)")
    ax.set_ylabel("number of training prompts")
    ax.set_title(f"Training-set SE and the {manifest.get('n_stages', len(stages))}-stage curriculum "
                 f"({manifest.get('method', '?')} split)", fontsize=10)
    if len(stages) > 1:
        legend_outside(ax)
    return fig


def se_vs_level(se: pd.DataFrame, ax=None):
    """SE per difficulty level (box + points) and Spearman's rho; returns (fig, rho, p_value)."""
    from scipy.stats import spearmanr

    known = se[se["level"] >= 0]
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(7.0, 4.0)
    levels = sorted(known["level"].unique())
    if levels:
        ax.boxplot([known.loc[known.level == lv, "se"] for lv in levels], positions=levels, widths=0.5)
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(known))
        ax.scatter(known["level"] + jitter, known["se"], s=6, alpha=0.4, color="#4c72b0")
    rho, p = spearmanr(known["level"], known["se"]) if len(levels) > 1 else (np.nan, np.nan)
    if not levels:
        add_note(ax, "no prompt has a known difficulty level (level = -1)")
    elif not np.isfinite(rho):
        add_note(ax, f"Spearman rho undefined: {'one level only' if len(levels) < 2 else 'SE is constant'}",
                 where="below")
    ax.set_xlabel("difficulty level (1 = easiest)")
    ax.set_ylabel("semantic entropy (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"SE vs difficulty: Spearman rho = {rho:.3f} (p = {p:.2g}, n = {len(known)})", fontsize=10)
    return fig, float(rho), float(p)


def pass_at_k_curves(curve: pd.DataFrame, runs: Sequence[str] | None = None, ncols: int = 3):
    """Pass@k (%) vs k (log2 axis), one panel per suite (``ncols`` per row), one line per run (± 1 s.d. over
    seeds, clipped to [0, 100]); one legend for all panels, right of them."""
    suites = list(dict.fromkeys(curve["suite"]))
    runs = order_runs(runs if runs is not None else curve["run"].unique())
    ncols = max(1, min(ncols, len(suites)))
    nrows = -(-len(suites) // ncols)
    fig, axes = new_figure(3.3 * ncols + 1.8, 2.9 * nrows + 0.5, nrows, ncols, squeeze=False, sharey=True)
    for ax, suite in zip(axes.flat, suites):
        for run in runs:
            c = curve[(curve.suite == suite) & (curve.run == run)].sort_values("k")
            c = c[np.isfinite(c["mean"].astype(float))]
            if c.empty:
                continue
            ls = "--" if run == "base" else "-"
            ax.plot(c["k"], c["mean"], ls, color=method_color(run), label=method_label(run), lw=1.5)
            if (c["n_seeds"] > 1).any():
                ax.fill_between(c["k"], clip_to(c["mean"] - c["std"], (0, 100)), clip_to(c["mean"] + c["std"], (0, 100)),
                                color=method_color(run), alpha=0.12, lw=0)
        if not ax.get_lines():
            add_note(ax, "no finite Pass@k\n(fewer samples than k?)")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 100)
        ax.set_xlabel("k (samples per problem)")
        ax.set_title(suite, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(suites):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("Pass@k (%)")
    handles: dict = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(_title("Pass@k vs k (unbiased estimator)", int(curve["n_seeds"].max())))
    return fig


def eval_length_bars(eval_df: pd.DataFrame, runs: Sequence[str] | None = None):
    """Mean evaluation response length (tokens) per run and suite; error bars = std over seeds."""
    per_seed = eval_df.groupby(["run", "seed", "suite"], as_index=False)["length"].mean()
    agg = per_seed.groupby(["run", "suite"])["length"].agg(["mean", "std", "count"]).reset_index()
    runs = order_runs(runs if runs is not None else agg["run"].unique())
    suites = list(dict.fromkeys(agg["suite"]))
    # at most 15 in wide at 150 dpi (2,250 px): bars get thinner, the figure does not get wider
    fig, ax = new_figure(min(15.0, max(7.5, 0.11 * len(runs) * len(suites) + 3.0)), 4.0)
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        a = agg[agg.run == run].set_index("suite").reindex(suites)
        ax.bar(np.arange(len(suites)) + i * width, a["mean"], width, yerr=a["std"].fillna(0),
               color=method_color(run), label=method_label(run), error_kw=dict(lw=0.8))
    ax.set_xticks(np.arange(len(suites)) + 0.4 - width / 2, suites)
    ax.set_ylabel("mean response length (tokens)")
    ax.set_xlabel("evaluation suite")
    ax.set_ylim(bottom=0)
    ax.set_title(_title("Evaluation response length", int(agg["count"].max()) if len(agg) else 1))
    legend_outside(ax)
    return fig
