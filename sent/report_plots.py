"""Plotting helpers of the reproduction notebooks (figures only; loading and tables are in sent.report).

Every helper takes DataFrames from :mod:`sent.report` loaders and returns a matplotlib Figure with
labelled axes (units in the label), a legend, and "single seed" in the title when only one seed ran.
Paper numbers, where shown, are drawn hatched/dashed and labelled "paper"; ours are solid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sent.report import method_color, method_label, order_runs, seeds_note, stage_boundaries
from sent.stats import seed_band


def _title(text: str, n_seeds: int) -> str:
    return f"{text} ({seeds_note(n_seeds)})"


def plot_curves(metrics: pd.DataFrame, key: str, ylabel: str, runs: Sequence[str] | None = None,
                title: str = "", smooth: int = 1, mark_stages_of: str | None = None, ax=None, labels=None):
    """One line per run of ``metrics[key]`` vs step: mean over seeds, shaded ± std when several seeds.

    ``smooth`` > 1 applies a centred rolling mean over that many steps (said in the x label).
    ``mark_stages_of`` draws the curriculum stage boundaries of that run (seed 0) as dotted lines.
    """
    if key not in metrics.columns:
        raise ValueError(f"key={key!r} is not a metrics column; available: {sorted(metrics.columns)}")
    runs = order_runs(runs if runs is not None else metrics["run"].unique())
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    n_seeds = 1
    for run in runs:
        m = metrics[metrics["run"] == run]
        if m.empty:
            continue
        wide = m.pivot_table(index="step", columns="seed", values=key)
        if smooth > 1:
            wide = wide.rolling(smooth, center=True, min_periods=1).mean()
        long = wide.reset_index().melt(id_vars="step", var_name="seed", value_name=key).assign(run=run)
        band = seed_band(long, "step", key).set_index("step")  # mean ± 1 s.d. over seeds (sent.stats)
        n_seeds = max(n_seeds, wide.shape[1])
        label = (labels or {}).get(run, method_label(run))
        ax.plot(band.index, band["mean"].values, color=method_color(run), label=label, lw=1.6)
        if wide.shape[1] > 1:
            ax.fill_between(band.index, band["lo"], band["hi"], color=method_color(run), alpha=0.15, lw=0)
    if mark_stages_of is not None:
        one = metrics[(metrics["run"] == mark_stages_of)]
        one = one[one["seed"] == one["seed"].min()]
        for i, (step, stage) in enumerate(stage_boundaries(one) if len(one) else []):
            ax.axvline(step, color="k", ls=":", lw=1, label="curriculum stage start" if i == 0 else None)
            ax.annotate(f"stage {stage}", (step, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=8)
    ax.set_xlabel("training step" + (f" (rolling mean over {smooth} steps)" if smooth > 1 else ""))
    ax.set_ylabel(ylabel)
    ax.set_title(_title(title or key, n_seeds))
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def table_figure(table: pd.DataFrame, title: str, max_col_chars: int = 16):
    """Render a display table (e.g. :func:`sent.report_tables.comparison_table`) as a figure for PNG/PDF."""
    flat = table.reset_index()
    # pandas 3 keeps NaN as a float under astype(str): render missing cells as empty text first.
    text = flat.map(lambda v: v if isinstance(v, str) else ("" if pd.isna(v) else str(v)))
    cells = text.map(lambda s: s if len(s) <= max_col_chars else s[: max_col_chars - 1] + "…")
    n_rows, n_cols = cells.shape
    fig, ax = plt.subplots(figsize=(max(6, 1.05 * n_cols), 0.6 + 0.28 * (n_rows + 1)))
    ax.axis("off")
    tab = ax.table(cellText=cells.values, colLabels=[str(c) for c in flat.columns], loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    tab.scale(1, 1.2)
    if "source" in flat.columns:  # grey = the paper's numbers, white = ours
        for i, src in enumerate(flat["source"], start=1):
            if str(src).startswith("paper"):
                for j in range(n_cols):
                    tab[i, j].set_facecolor("#eeeeee")
    ax.set_title(title, fontsize=9)
    return fig


def se_histogram(se: pd.DataFrame, manifest: dict, bins: int = 30, ax=None):
    """Histogram of training-set semantic entropy (nats) with the curriculum stage split marked."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.8))
    ax.hist(se["se"].dropna(), bins=bins, color="#4c72b0", alpha=0.85)
    stages = manifest.get("stages", [])
    for st in stages[:-1]:
        ax.axvline(st["se_max"], color="#d62728", ls="--", lw=1.2,
                   label="stage split" if st is stages[0] else None)
    for st in stages:
        ax.annotate(f"stage {st['index']}\n(n={st['size']})", ((st["se_min"] + st["se_max"]) / 2, 0.95),
                    xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=8)
    ax.set_xlabel("semantic entropy of the prompt (nats)")
    ax.set_ylabel("number of training prompts")
    ax.set_title(f"Training-set SE and the {manifest.get('n_stages', len(stages))}-stage curriculum "
                 f"({manifest.get('method', '?')} split)")
    if len(stages) > 1:
        ax.legend(fontsize=8)
    return fig


def se_vs_level(se: pd.DataFrame, ax=None):
    """SE per difficulty level (box + points) and Spearman's rho; returns (fig, rho, p_value)."""
    from scipy.stats import spearmanr

    known = se[se["level"] >= 0]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.8))
    levels = sorted(known["level"].unique())
    ax.boxplot([known.loc[known.level == lv, "se"] for lv in levels], positions=levels, widths=0.5)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(known))
    ax.scatter(known["level"] + jitter, known["se"], s=6, alpha=0.4, color="#4c72b0")
    rho, p = spearmanr(known["level"], known["se"]) if len(levels) > 1 else (np.nan, np.nan)
    ax.set_xlabel("difficulty level (1 = easiest)")
    ax.set_ylabel("semantic entropy (nats)")
    ax.set_title(f"SE vs difficulty: Spearman rho = {rho:.3f} (p = {p:.2g}, n = {len(known)})")
    return fig, float(rho), float(p)


def _display_token(tok: str) -> str:
    return tok.replace("\n", "↵").replace("\t", "→") or "∅"


def token_heatmap(row: pd.Series, line_chars: int = 70, vmax: float | None = None):
    """One rollout's tokens coloured by entropy (nats); low-entropy tokens underlined, high-cov boxed red.

    ``row`` is one row of a rollout parquet (docs/ARCHITECTURE.md). Tokens are laid out on a monospace
    grid, wrapped at ``line_chars`` characters.
    """
    tokens = [_display_token(t) for t in row["tokens"]]
    ent = np.asarray(row["entropy"], dtype=float)  # (T,)
    low = np.asarray(row["low_entropy"], dtype=bool) if "low_entropy" in row else np.zeros(len(ent), bool)
    high = np.asarray(row["high_cov"], dtype=bool) if "high_cov" in row else np.zeros(len(ent), bool)
    pos, x, y = [], 0, 0
    for tok in tokens:
        if x and x + len(tok) > line_chars:
            x, y = 0, y + 1
        pos.append((x, y))
        x += len(tok)
    n_lines = y + 1
    fig, ax = plt.subplots(figsize=(line_chars * 0.11 + 1.2, 0.32 * n_lines + 1.3))
    norm = matplotlib.colors.Normalize(0, vmax if vmax is not None else max(float(ent.max()), 1e-6))
    cmap = matplotlib.colormaps["viridis"]
    for tok, (x, y), h, lo, hi in zip(tokens, pos, ent, low, high):
        ax.add_patch(plt.Rectangle((x, -y - 0.9), len(tok), 0.8, color=cmap(norm(h)), lw=0))
        ax.text(x, -y - 0.5, tok, family="monospace", fontsize=8, va="center",
                color="white" if norm(h) < 0.5 else "black")
        if lo:
            ax.plot([x, x + len(tok)], [-y - 0.95, -y - 0.95], color="#222222", lw=0.8)
        if hi:
            ax.add_patch(plt.Rectangle((x, -y - 0.9), len(tok), 0.8, fill=False, ec="#d62728", lw=1.6))
    ax.set_xlim(0, line_chars)
    ax.set_ylim(-n_lines - 0.2, 0.1)
    ax.axis("off")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.05, pad=0.02, label="token entropy (nats)")
    ax.set_title(f"step {row['step']}, {row['prompt_id']} sample {row['sample_id']}, reward {row['reward']:.2f}: "
                 f"underline = low-entropy set ({low.sum()}/{len(ent)} tokens), red box = high-covariance "
                 f"({high.sum()})", fontsize=8)
    return fig


def token_frequencies(rollouts: pd.DataFrame, mask_column: str, lowercase: bool = True) -> Counter:
    """Counts of token strings (whitespace-stripped) where ``mask_column`` (e.g. 'low_entropy') is True."""
    if mask_column not in rollouts.columns:
        raise ValueError(f"mask_column={mask_column!r} not in the rollouts; available: {list(rollouts.columns)}")
    counts: Counter = Counter()
    for toks, mask in zip(rollouts["tokens"], rollouts[mask_column]):
        for tok, m in zip(toks, mask):
            word = tok.strip().lower() if lowercase else tok.strip()
            if m and word:
                counts[word] += 1
    return counts


def wordcloud_figure(freqs: Counter, title: str, seed: int = 0, ax=None):
    """Word cloud of token counts (``wordcloud`` package, its bundled font; deterministic with ``seed``)."""
    from wordcloud import WordCloud

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.5))
    ax.axis("off")
    if not freqs:
        ax.text(0.5, 0.5, "no tokens in this set", ha="center", va="center")
    else:
        wc = WordCloud(width=600, height=350, background_color="white", random_state=seed,
                       collocations=False, min_font_size=6).generate_from_frequencies(dict(freqs))
        ax.imshow(wc, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    return fig


def pass_at_k_curves(curve: pd.DataFrame, runs: Sequence[str] | None = None):
    """Pass@k (%) vs k (log2 axis), one panel per suite, one line per run (± std over seeds)."""
    suites = list(dict.fromkeys(curve["suite"]))
    runs = order_runs(runs if runs is not None else curve["run"].unique())
    fig, axes = plt.subplots(1, len(suites), figsize=(4.2 * len(suites), 3.8), squeeze=False, sharey=True)
    for ax, suite in zip(axes[0], suites):
        for run in runs:
            c = curve[(curve.suite == suite) & (curve.run == run)].sort_values("k")
            if c.empty:
                continue
            ls = "--" if run == "base" else "-"
            ax.plot(c["k"], c["mean"], ls, color=method_color(run), label=method_label(run), lw=1.5)
            if (c["n_seeds"] > 1).any():
                ax.fill_between(c["k"], c["mean"] - c["std"], c["mean"] + c["std"], color=method_color(run),
                                alpha=0.12, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples per problem)")
        ax.set_title(suite)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pass@k (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(_title("Pass@k vs k (unbiased estimator)", int(curve["n_seeds"].max())))
    fig.tight_layout()
    return fig


def eval_length_bars(eval_df: pd.DataFrame, runs: Sequence[str] | None = None):
    """Mean evaluation response length (tokens) per run and suite; error bars = std over seeds."""
    per_seed = eval_df.groupby(["run", "seed", "suite"], as_index=False)["length"].mean()
    agg = per_seed.groupby(["run", "suite"])["length"].agg(["mean", "std", "count"]).reset_index()
    runs = order_runs(runs if runs is not None else agg["run"].unique())
    suites = list(dict.fromkeys(agg["suite"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(runs) * len(suites)), 3.8))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        a = agg[agg.run == run].set_index("suite").reindex(suites)
        ax.bar(np.arange(len(suites)) + i * width, a["mean"], width, yerr=a["std"].fillna(0),
               color=method_color(run), label=method_label(run))
    ax.set_xticks(np.arange(len(suites)) + 0.4 - width / 2, suites)
    ax.set_ylabel("mean response length (tokens)")
    ax.set_xlabel("evaluation suite")
    ax.set_title(_title("Evaluation response length", int(agg["count"].max())))
    ax.legend(fontsize=7, ncol=2)
    return fig
