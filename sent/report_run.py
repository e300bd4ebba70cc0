"""One run at a glance: ``sent report RUN_DIR`` and ``notebooks/one_run.ipynb``.

Reads any run folder in the layout of docs/ARCHITECTURE.md ("Training runs"): ``metrics.jsonl``, ``config.yaml``
and ``rollouts/step_*.parquet``, whatever model trained it (a profile's run, a run of your own model, rollouts
imported with ``sent rollouts import`` next to a metrics file). What the folder lacks is said on the figure, not
invented. Figures (:func:`write_report`):

* ``<stem>_curves``: token entropy (all tokens and the trainer's two token sets), training reward, completion length
  and the gate shares (SENT gate metrics; a note when the run has none), per generation batch, stage starts dotted;
* ``<stem>_heatmap``: one recorded response coloured by token entropy, with the trainer's selections;
* ``<stem>_wordclouds``: the tokens of the low-entropy and the high-covariance sets over the recorded steps.

Special and padding tokens are left out of the heat map and word clouds (the tokenizer's own list: the run's
``final/`` folder, else the model it started from, else ``tokenizer=``; without one, their spelling). Selection
figures say whether ties decided the selection (:func:`sent.report_tokens.selection_ties`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd

from sent.artifacts import (
    ROLLOUTS_COMMAND,
    RunPaths,
    final_dir,
    read_metrics,
    read_rollouts,
    read_run_config,
    rollout_steps,
)
from sent.io import MissingArtifactError
from sent.report import (
    add_generation_batches,
    method_label,
    savefig,
    seeds_note,
    updates_per_generation,
    write_status,
)
from sent.report_plots import (
    add_note,
    clip_to,
    draw_stage_lines,
    legend_outside,
    limit_axis,
    new_figure,
    run_curve,
)
from sent.report_tokens import (
    SET_NAMES,
    load_special_tokens,
    pick_response,
    selection_ties,
    ties_note,
    token_frequencies,
    token_heatmap,
    wordcloud_figure,
)


logger = logging.getLogger(__name__)

#: The panels of the curves figure: (title, y label, {metrics key: legend label}, value range). The first key found
#: of a panel's alternatives is plotted (``completions/mean_length`` is TRL's, ``length/mean`` the gate's).
PANELS = (
    ("token entropy", "nats/token", {"entropy/all": "all tokens", "entropy/low": "low-entropy set",
                                     "entropy/high_cov": "high-covariance set"}, (0.0, None)),
    ("training reward", "mean reward per response", {"reward": "reward"}, (None, None)),
    ("completion length", "tokens", {"completions/mean_length": "completions (TRL)"}, (0.0, None)),
    ("gate shares", "fraction of tokens (log scale)", {"share/low": "low-entropy set",
                                                       "share/high_cov": "high-covariance set"}, (0.0, 1.0)),
)
LENGTH_FALLBACK = {"length/mean": "valid tokens per response"}
_COLORS = ("#1f77b4", "#ff7f0e", "#d62728")


@dataclass
class RunView:
    """What a run folder holds, as read by :func:`load_run`."""

    run_dir: Path
    run: str
    seed: int | None  # None for a folder outside <root>/runs/<run>/seed<k>
    metrics: pd.DataFrame | None
    config: dict | None
    steps: list[int]
    special_ids: set[int] | None = None
    special_tokens: set[str] | None = None
    tokenizer: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return f"one_run_{self.run}" + ("" if self.seed is None else f"_seed{self.seed}")

    @property
    def method(self) -> str | None:
        cfg = (self.config or {}).get("config") or {}
        return cfg.get("method") if isinstance(cfg, dict) else None

    @property
    def label(self) -> str:
        method = self.method
        name = self.run if self.seed is None else f"{self.run}/seed{self.seed}"
        return f"{name} ({method_label(method)})" if method and method_label(method) != self.run else name


def default_tokenizer(run_dir: Path, config: dict | None) -> str | None:
    """The run's own tokenizer: its ``final/`` folder when that holds one, else the model it started from."""
    for candidate in (final_dir(run_dir), Path(str(((config or {}).get("model") or {}).get("model_name_or_path", "")))):
        if str(candidate) and (candidate / "tokenizer_config.json").exists():
            return str(candidate)
    return None


def load_run(run_dir: str | os.PathLike, tokenizer: str | None = None) -> RunView:
    """Read a run folder; :class:`MissingArtifactError` when it has neither ``metrics.jsonl`` nor rollouts."""
    run_dir = Path(run_dir)
    paths = RunPaths.from_dir(run_dir)
    run, seed = (paths.run, paths.seed) if paths else (run_dir.resolve().name, None)
    config = read_run_config(run_dir)
    metrics = read_metrics(run_dir)
    missing = []
    if metrics is None or metrics.empty:
        metrics = None
        missing.append("metrics.jsonl (written by `sent train`)")
    else:
        metrics = add_generation_batches(metrics, updates_per_generation(config)).assign(run=run, seed=seed or 0)
    steps = rollout_steps(run_dir / "rollouts") if (run_dir / "rollouts").is_dir() else rollout_steps(run_dir)
    if not steps:
        missing.append("rollouts/step_*.parquet (sent train --record_rollouts_every N)")
    if metrics is None and not steps:
        raise MissingArtifactError(run_dir / "metrics.jsonl and rollouts/", "sent train --config <recipe.yaml> "
                                   "--record_rollouts_every N (a run folder holds both)")
    tok = tokenizer or default_tokenizer(run_dir, config)
    ids, strings = load_special_tokens(tok) if steps else (None, None)
    return RunView(run_dir, run, seed, metrics, config, steps, ids, strings, tok if ids is not None else None, missing)


def rollouts_of(view: RunView, steps: list[int] | None = None) -> pd.DataFrame:
    folder = view.run_dir / "rollouts" if (view.run_dir / "rollouts").is_dir() else view.run_dir
    return read_rollouts(folder, steps=steps, command=ROLLOUTS_COMMAND)


# ------------------------------------------------------------------------------------------------ curves

def _panel(ax, view: RunView, title: str, unit: str, keys: dict, bounds, smooth: int) -> None:
    m = view.metrics
    if m is None:
        add_note(ax, "no metrics.jsonl in the run folder")
        ax.set(xticks=[], yticks=[])
        ax.set_title(title, fontsize=10)
        return
    if title == "completion length" and not any(k in m.columns for k in keys):
        keys = LENGTH_FALLBACK
    drawn = []
    for color, (key, label) in zip(_COLORS, keys.items()):
        wide = run_curve(m, key, smooth) if key in m.columns else None
        if wide is None:
            continue
        y = clip_to(wide.mean(axis=1), bounds)
        if title == "gate shares":
            y[y <= 0] = float("nan")  # log scale: a share of 0 is not drawn
        ax.plot(wide.index, y, color=color, lw=1.4, label=label)
        drawn.append(key)
    values = [v for line in ax.get_lines() for v in line.get_ydata() if v == v]
    if drawn and values and all(v == 0 for v in values):
        add_note(ax, f"{', '.join(drawn)}: 0 at every generation batch", where="below")
    if not drawn:
        ax.set(xticks=[], yticks=[])
        what = ", ".join(keys)
        why = ("the run logs no SENT gate metrics (not trained by `sent train`)" if title == "gate shares"
               else "not logged by this run")
        add_note(ax, f"no {what}:\n{why}")
    elif title == "gate shares":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        limit_axis(ax, bounds)
    stages = draw_stage_lines(ax, m, [view.run], colors={view.run: "#555555"}) if drawn else []
    ax.set_title(title, fontsize=10, pad=12 if stages else 6)
    ax.set_ylabel(unit)
    ax.set_xlabel("generation batch" + (f" (rolling mean over {smooth})" if smooth > 1 else ""))
    if drawn:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if stages:
        handles.append(matplotlib.lines.Line2D([], [], color="#555555", ls=":", lw=1.3))
        labels.append("stage start")
    legend_outside(ax, handles, labels)


def curves_figure(view: RunView, smooth: int = 1):
    """Entropy, reward, completion length and gate shares of one run per generation batch (2 x 2 panels)."""
    fig, axes = new_figure(12.0, 7.0, 2, 2)
    for ax, (title, unit, keys, bounds) in zip(axes.flat, PANELS):
        _panel(ax, view, title, unit, keys, bounds, smooth)
    what = (f"{int(view.metrics['generation_batch'].max())} generation batches" if view.metrics is not None
            else "no training metrics")
    fig.suptitle(f"{view.label}: {what} ({seeds_note(1)})", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------------ tokens

def heatmap_figure(view: RunView, step: int | None = None, sample_index: int | None = None):
    """One recorded response of ``step`` (default: the last recorded) as a token heat map; ``sample_index`` counts
    rows in (prompt_id, sample_id) order (default: :func:`sent.report_tokens.pick_response`)."""
    if not view.steps:
        fig, ax = new_figure(7.0, 2.5)
        ax.axis("off")
        add_note(ax, "no recorded rollouts in the run folder:\nsent train --record_rollouts_every N records them")
        return fig
    step = view.steps[-1] if step is None else int(step)
    ro = rollouts_of(view, [step]).sort_values(["prompt_id", "sample_id"], ignore_index=True)
    index = pick_response(ro) if sample_index is None else int(sample_index)
    ties = {SET_NAMES[col]: selection_ties(ro, col) for col in SET_NAMES if col in ro.columns}
    return token_heatmap(ro.iloc[index], special_ids=view.special_ids, special_tokens=view.special_tokens,
                         ties=ties_note(ties) if ties else None)


def wordclouds_figure(view: RunView, steps: list[int] | None = None):
    """Word clouds of the low-entropy and the high-covariance tokens over ``steps`` (default: every recorded step)."""
    fig, axes = new_figure(13.0, 4.2, 1, 2)
    ro = rollouts_of(view, steps) if view.steps else None
    for ax, col in zip(axes, SET_NAMES):
        name = SET_NAMES[col]
        if ro is None or col not in ro.columns:
            why = "no recorded rollouts" if ro is None else f"the rollouts do not record the trainer's {col} column"
            wordcloud_figure({}, name, ax=ax, empty_reason=why)
            continue
        counts = token_frequencies(ro, col, special_ids=view.special_ids, special_tokens=view.special_tokens)
        wordcloud_figure(counts, f"{name}: {sum(counts.values())} tokens", ax=ax,
                         note=ties_note(selection_ties(ro, col), name),
                         empty_reason=f"the trainer selected no {name} in the recorded steps")
    shown = sorted(set(ro.step)) if ro is not None else []
    specials = "the tokenizer's list" if view.special_ids is not None else "their spelling"
    fig.suptitle(f"{view.label}: recorded steps {_span(shown)} (special tokens left out by {specials})", fontsize=10)
    return fig


def _span(steps: list[int]) -> str:
    if not steps:
        return "none"
    return f"{steps[0]}-{steps[-1]} ({len(steps)} files)" if len(steps) > 1 else str(steps[0])


# ------------------------------------------------------------------------------------------------ all of it

def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike, tokenizer: str | None = None,
                 step: int | None = None, sample_index: int | None = None, smooth: int = 1,
                 show: bool = False) -> dict[str, dict[str, Path]]:
    """Write the three figures of one run to ``<out_dir>/figures/<stem>_*.{png,pdf}`` and a status file
    ``<out_dir>/tables/<stem>_status.json`` (what the folder lacks); returns ``{figure: {"png", "pdf"}}``.
    ``show`` displays each figure (notebooks) before it is closed."""
    import matplotlib.pyplot as plt

    view = load_run(run_dir, tokenizer)
    out = {}
    for name, make in (("curves", lambda: curves_figure(view, smooth)),
                       ("heatmap", lambda: heatmap_figure(view, step, sample_index)),
                       ("wordclouds", lambda: wordclouds_figure(view))):
        fig = make()
        out[name] = savefig(fig, out_dir, f"{view.stem}_{name}")
        if show:
            plt.show()
        plt.close(fig)
    write_status(out_dir, view.stem, {"run_dir": str(view.run_dir), "missing": view.missing,
                                      "recorded_steps": view.steps, "tokenizer": view.tokenizer,
                                      "figures": {k: str(v["png"]) for k, v in out.items()}})
    return out
