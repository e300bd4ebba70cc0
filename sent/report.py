"""Method names and artifact loaders of the reproduction notebooks, and where their figures go.

The notebooks in ``notebooks/`` are thin: a ``parameters`` cell, then calls into this module (method labels,
colours and order; loading the artifacts into DataFrames; saving figures), :mod:`sent.report_tables` (score tables)
and :mod:`sent.report_plots` (figures). Everything here only *reads* the artifacts described in
``docs/ARCHITECTURE.md`` (through the readers of :mod:`sent.artifacts`); nothing trains or samples. A missing
artifact raises :class:`sent.io.MissingArtifactError` naming the ``run_all.sh`` step that makes it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent.artifacts import (
    RootPaths,
    RunPaths,
    eval_files,
    iter_runs,
    manifest_file,
    read_eval_file,
    read_metrics,
    read_rollouts,
    read_run_config,
    read_se_table,
    rollout_steps,
    save_figure,
)
from sent.io import MissingArtifactError, atomic_write_text
from sent.rollouts import rollout_file_name


logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------
# Method names, paper columns, colours, order (one place for every notebook)
# ----------------------------------------------------------------------------------------------------

#: Training methods of the comparison tables, in the paper's column order (plus the released-code variant).
METHODS: tuple[str, ...] = (
    "grpo", "entropy_bonus", "entropy_adv", "clip_cov", "kl_cov", "high_entropy", "sent_release", "sent",
)
#: Column order of the comparison tables: base model, the paper's columns, then the paper-formula variant.
#: The paper's "w/ SENT" column is filled by ``sent_release``, the rule the authors ran (paper.md §3); ``sent`` (the
#: paper's formula, with beta values the paper does not give) is its own column.
TABLE_ORDER: tuple[str, ...] = (
    "base", "grpo", "entropy_bonus", "entropy_adv", "mask", "clip_cov", "kl_cov", "high_entropy", "sent_release",
    "sent",
)
#: Paper column header for each method name.
PAPER_COLUMNS: dict[str, str] = {
    "base": "Base", "grpo": "GRPO", "entropy_bonus": "w/ En", "entropy_adv": "w/ Adv", "mask": "w/ Mask",
    "clip_cov": "w/ Clip", "kl_cov": "w/ Cov", "high_entropy": "w/ High_En", "sent_release": "w/ SENT",
    "sent": "SENT (formula)",  # the paper's formula with assumed β values (short: it heads a table column)
}
#: The one convention for a value a table or figure cannot show (docs/FIGURES-STYLE.md, "Tables" 3). Every table
#: caption ends with :func:`missing_values_note`, which says what each one means.
NOT_RUN = "not run"
#: The paper's "w/ Mask [18]" baseline is unidentified (no bibliography): shown from the paper, never run.
NOT_RUN_NOTE = "not run (unidentified)"
#: An estimator that is undefined here (Pass@k with fewer than k samples): never extrapolated.
UNDEFINED = "n/a"
#: Cell text for our column of a method the paper does not have.
NOT_IN_PAPER = "not in paper"
#: What the paper does not say (its seeds, its numbers for 7B / 14B).
UNKNOWN = "unknown"
MISSING_VALUES: dict[str, str] = {
    NOT_RUN: "we have no artifact for it (the reason in brackets when known)",
    UNDEFINED: "the estimator is undefined (fewer samples than k)",
    NOT_IN_PAPER: "our column; the paper has no such method",
    UNKNOWN: "the paper does not say",
}


def missing_values_note(words=None) -> str:
    """The sentence that explains the missing-value words of a table (``words``: those it holds; default all),
    appended to its caption."""
    used = [k for k in MISSING_VALUES if words is None or k in words]
    return "Missing values: " + "; ".join(f'"{k}" = {MISSING_VALUES[k]}' for k in used) + "." if used else ""


#: Ablation runs of reproduce/run_all.sh, grouped as in the ablation notebook. "sent" is the full method
#: (2 stages, low-entropy ratio 0.8, both KL tiers, curriculum).
ABLATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "components": (
        ("abl_curriculum_only", "curriculum only"),
        ("abl_lowkl_only", "low-entropy KL only"),
        ("abl_lowkl_highcov_nocurr", "low + high-cov KL, no curriculum"),
        ("sent", "full SENT (paper formula)"),
    ),
    # One stage is the no-curriculum run: a single shuffled stage is exactly that configuration.
    "stages": (("abl_lowkl_highcov_nocurr", "1 stage (no curriculum)"), ("sent", "2 stages"), ("abl_stages_3", "3 stages")),
    "low_entropy_ratio": (("abl_ratio_0.7", "ratio 0.7"), ("sent", "ratio 0.8"), ("abl_ratio_0.9", "ratio 0.9")),
    "token_filter": (("sent", "all tokens"), ("sent_content", "content tokens only")),
    # The paper's beta_low / beta_high are unknown: the paper formula at three beta_low values (beta_high = 4x).
    "beta": (("sent_beta_0.001", "β_low 0.001"), ("sent_beta_0.01", "β_low 0.01"), ("sent", "β_low 0.05")),
    # The curriculum confound: GRPO on SE stages low-to-high, high-to-low, and on random stages of the same sizes.
    "curriculum_order": (("grpo", "GRPO, no stages"), ("abl_curriculum_only", "SE stages, low → high"),
                         ("ctl_curr_reverse", "SE stages, high → low"), ("ctl_curr_random", "random stages")),
}

_PALETTE = {
    "base": "#7f7f7f", "grpo": "#1f77b4", "entropy_bonus": "#ff7f0e", "entropy_adv": "#2ca02c",
    "mask": "#bcbd22", "clip_cov": "#9467bd", "kl_cov": "#8c564b", "high_entropy": "#e377c2",
    "sent": "#d62728", "sent_release": "#17becf",
}


def method_label(run: str) -> str:
    """Display label of a run: the paper column for a method, else the run name itself."""
    return PAPER_COLUMNS.get(run, run)


def method_color(run: str) -> str:
    """Stable colour of a run (methods fixed; other runs hashed onto a tab20 colour)."""
    if run in _PALETTE:
        return _PALETTE[run]
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return matplotlib.colors.to_hex(cmap(sum(map(ord, run)) % 20))


def order_runs(runs: Iterable[str]) -> list[str]:
    """Sort run names: table order first, then everything else alphabetically."""
    runs = list(dict.fromkeys(runs))
    rank = {m: i for i, m in enumerate(TABLE_ORDER)}
    return sorted(runs, key=lambda r: (rank.get(r, len(rank)), r))


def seeds_count(n_seeds: int) -> str:
    """'single seed' or 'N seeds' (for captions of tables whose cells carry intervals, not ± std)."""
    return "single seed" if int(n_seeds) == 1 else f"{int(n_seeds)} seeds"


def seeds_note(n_seeds: int) -> str:
    """'single seed' for one seed, else 'mean ± std over N seeds' (for titles and captions)."""
    return "single seed" if int(n_seeds) == 1 else f"mean ± std over {int(n_seeds)} seeds"


# ----------------------------------------------------------------------------------------------------
# Commands that make each artifact (named in MissingArtifactError)
# ----------------------------------------------------------------------------------------------------

#: Step names of ``reproduce/run_all.sh --only <step>``.
STEPS = {"se": "se", "curriculum": "curriculum", "train": "train", "eval": "eval", "base": "base"}


def artifact_command(profile: str, step: str) -> str:
    """The command that produces the artifacts of ``step`` for ``profile``."""
    if step not in STEPS:
        raise ValueError(f"step={step!r} unknown; use one of {sorted(STEPS)}")
    return f"bash reproduce/run_all.sh --profile {profile} --only {STEPS[step]}"


def repo_path(path: str | os.PathLike) -> Path:
    """``path`` as given when absolute, else relative to the source tree root (notebooks run elsewhere)."""
    p = Path(path)
    return p if p.is_absolute() else Path(__file__).resolve().parents[1] / p


def profile_of(root: str | os.PathLike) -> str:
    """Profile name of an artifact root (``artifacts/<profile>`` by convention)."""
    return Path(root).resolve().name


def _require(path: Path, root, step: str, profile: str | None) -> Path:
    if not path.exists():
        raise MissingArtifactError(path, artifact_command(profile or profile_of(root), step))
    return path


# ----------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------

def load_runs(root: str | os.PathLike, runs: Sequence[str] | None = None, profile: str | None = None) -> pd.DataFrame:
    """Per-step training metrics of every ``<root>/runs/<run>/seed<k>/metrics.jsonl``.

    Returns one row per (run, seed, step) with columns ``run, seed`` + the metrics keys
    (docs/ARCHITECTURE.md) + ``generation_batch`` (:func:`add_generation_batches`, from the run's config.yaml). ``runs`` restricts to those run names; a requested run with no metrics is
    an error naming the training command.
    """
    root = Path(root)
    _require(RootPaths(root).runs, root, "train", profile)
    frames = []
    for paths in iter_runs(root, runs):
        df = read_metrics(paths.metrics)  # a torn last line (run still writing) is skipped with a warning
        if df is not None and len(df):
            upg = updates_per_generation(read_run_config(paths.config))
            frames.append(add_generation_batches(df, upg).assign(run=paths.run, seed=paths.seed))
    found = {f["run"].iat[0] for f in frames if len(f)}
    missing = [r for r in (runs or []) if r not in found]
    if missing or not found:
        path = RunPaths(root, missing[0] if missing else "<run>", 0).metrics
        raise MissingArtifactError(path, artifact_command(profile or profile_of(root), "train"))
    df = pd.concat(frames, ignore_index=True)
    front = ["run", "seed", "step"]
    return df[front + [c for c in df.columns if c not in front]].sort_values(front, ignore_index=True)


# Suites of the non-math domain: the cross-domain analysis reads them; the paper's math tables leave them out.
NON_MATH_SUITES = ("toy-relations",)


def load_eval(root: str | os.PathLike, runs: Sequence[str] | None = None, profile: str | None = None,
              include_base: bool = True, exclude_suites: Sequence[str] = NON_MATH_SUITES) -> pd.DataFrame:
    """All evaluation samples: ``runs/<run>/seed<k>/eval/*.parquet`` and the base model's ``eval/base/``.

    One row per sample (docs/ARCHITECTURE.md "Evaluation") plus ``run`` (``"base"`` for the base model)
    and ``seed`` (the base model is seed 0). Suites in ``exclude_suites`` are skipped.
    """
    root = Path(root)
    profile = profile or profile_of(root)
    frames = []
    if include_base:
        base_dir = _require(RootPaths(root).base_eval, root, "eval", profile)
        frames += [read_eval_file(p).assign(run="base", seed=0) for p in eval_files(base_dir)
                   if p.stem not in exclude_suites]
    for paths in iter_runs(root, runs):
        frames += [read_eval_file(p).assign(run=paths.run, seed=paths.seed) for p in eval_files(paths.eval_dir)
                   if p.stem not in exclude_suites]
    found = {f["run"].iat[0] for f in frames if len(f)}
    missing = [r for r in (runs or []) if r not in found]
    if missing or not frames:
        what = missing[0] if missing else "<run>"
        raise MissingArtifactError(RunPaths(root, what, 0).eval_dir, artifact_command(profile, "eval"))
    return pd.concat(frames, ignore_index=True)


def reference_dir() -> Path:
    """``reproduce/reference/`` of the source tree (the paper's numbers)."""
    return Path(__file__).resolve().parents[1] / "reproduce" / "reference"


_PAPER_FILES = {"pass@k": "table1_pass_at_k.csv", "avg@k": "table2_avg_at_k.csv"}


def load_paper_table(which: str | int) -> pd.DataFrame:
    """The paper's Table I (``"pass@k"``/``1``) or Table II (``"avg@k"``/``2``), long format.

    Columns ``benchmark, metric, k, method, paper_column, value, source, note``; values in percent;
    the printed "Avg." row has ``benchmark == "Avg."`` and no k. These are the PAPER's numbers.
    """
    key = {1: "pass@k", 2: "avg@k", "table1": "pass@k", "table2": "avg@k"}.get(which, which)
    if key not in _PAPER_FILES:
        raise ValueError(f"which={which!r}: use 'pass@k' (Table I) or 'avg@k' (Table II)")
    path = reference_dir() / _PAPER_FILES[key]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the source tree; restore it with `git checkout {path}`")
    df = pd.read_csv(path, dtype={"note": str}, keep_default_na=False, na_values={"k": [""]})
    df["k"] = df["k"].astype("Int64")
    return df


def stage_boundaries(metrics: pd.DataFrame, x: str = "step") -> list[tuple[int, int]]:
    """``(x, stage)`` of every curriculum stage start after the first, for ONE run/seed (``x``: ``"step"`` or
    ``"generation_batch"``, the column whose value at the stage's first line is returned).

    A boundary is a line whose ``stage`` differs from the previous line's (docs/ARCHITECTURE.md).
    """
    if "stage" not in metrics.columns or "step" not in metrics.columns or x not in metrics.columns:
        raise ValueError(f"metrics needs columns 'step', 'stage' and {x!r} (one run/seed of load_runs())")
    if metrics.get("run", pd.Series(dtype=str)).nunique() > 1 or metrics.get("seed", pd.Series()).nunique() > 1:
        raise ValueError("metrics holds several runs/seeds; select one, e.g. metrics[metrics.run == 'sent']")
    m = metrics.dropna(subset=["stage"]).sort_values("step")
    stage = m["stage"].to_numpy()
    idx = np.flatnonzero(stage[1:] != stage[:-1]) + 1
    return [(int(m[x].iat[i]), int(stage[i])) for i in idx]


# ----------------------------------------------------------------------------------------------------
# The x unit of training curves: generation batches
# ----------------------------------------------------------------------------------------------------

#: x label of every training curve. One generation batch = one round of sampling (prompts x samples per prompt),
#: served by ``updates_per_generation`` optimizer updates; runs with different updates per batch (another profile, a
#: user's run, an imported one) line up in this unit, and every run of a profile ends at the same batch.
X_UNIT = "generation batch"


def updates_per_generation(config: dict | None) -> int | None:
    """Optimizer updates per generation batch recorded in a run's ``config.yaml`` (its ``config`` section, TRL's
    ``steps_per_generation x num_iterations / gradient_accumulation_steps``, as ``SENTConfig.updates_per_generation``);
    None when the file does not say."""
    cfg = (config or {}).get("config") or {}
    if not isinstance(cfg, dict) or "num_iterations" not in cfg and "steps_per_generation" not in cfg:
        return None
    try:
        accum = int(cfg.get("gradient_accumulation_steps") or 1)
        per_gen = int(cfg.get("steps_per_generation") or accum)  # TRL: None means gradient_accumulation_steps
        return max(1, per_gen * int(cfg.get("num_iterations") or 1) // accum)
    except (TypeError, ValueError):
        return None


def add_generation_batches(metrics: pd.DataFrame, updates: int | None = None) -> pd.DataFrame:
    """``metrics`` of ONE run/seed plus the column ``generation_batch`` (1-based).

    With ``updates`` (optimizer updates per generation batch, :func:`updates_per_generation`) it is
    ``(step - 1) // updates + 1``. Without, it is counted from the lines that log ``reward``: TRL logs the reward
    once per generation batch, on its first update. Without a ``reward`` column, one update per batch is assumed
    (warned): the x axis is then the optimizer step.
    """
    m = metrics.sort_values("step").copy()
    step = pd.to_numeric(m["step"]).astype(int)
    if updates is not None:
        m["generation_batch"] = (step - 1) // int(updates) + 1
    elif "reward" in m.columns and m["reward"].notna().any():
        logged = m["reward"].notna().to_numpy(copy=True)
        logged[0] = True  # the first line always starts a batch
        m["generation_batch"] = np.cumsum(logged)
    else:
        logger.warning("no config.yaml and no reward lines: one update per generation batch assumed (x = step)")
        m["generation_batch"] = step
    return m


def read_rollout_step(root: str | os.PathLike, run: str, seed: int = 0, step: int | None = None,
                      profile: str | None = None) -> pd.DataFrame:
    """Token-level rollouts of one recorded step (the last recorded one when ``step`` is None)."""
    root = Path(root)
    d = _require(RunPaths(root, run, seed).rollouts, root, "train", profile)
    command = artifact_command(profile or profile_of(root), "train")
    steps = rollout_steps(d)
    want = steps[-1] if step is None and steps else step
    if want is None or int(want) not in steps:
        raise MissingArtifactError(d / (rollout_file_name(want) if want is not None else "step_*.parquet"), command)
    return read_rollouts(d, steps=[int(want)], command=command)


def recorded_steps(root: str | os.PathLike, run: str, seed: int = 0) -> list[int]:
    """Steps with a rollout file for ``run``/``seed`` (empty when none)."""
    return rollout_steps(RunPaths(root, run, seed).rollouts)


def load_se(root: str | os.PathLike, domain: str = "math", profile: str | None = None) -> pd.DataFrame:
    """The semantic-entropy table ``<root>/se/<domain>.parquet`` (one row per training prompt)."""
    return read_se_table(root, domain, command=artifact_command(profile or profile_of(root), "se"))


def load_curriculum_manifest(root: str | os.PathLike, name: str | None = None, profile: str | None = None) -> dict:
    """``<root>/curriculum/<name>/manifest.json``; with ``name=None`` the only (or first) curriculum."""
    from sent.curriculum import read_manifest

    root = Path(root)
    cdir = _require(RootPaths(root).curricula, root, "curriculum", profile)
    if name is None:
        names = sorted(p.name for p in cdir.iterdir() if manifest_file(p).exists())
        if not names:
            raise MissingArtifactError(manifest_file(cdir / "<name>"),
                                       artifact_command(profile or profile_of(root), "curriculum"))
        if len(names) > 1:
            logger.info("several curricula %s; using %s (pass name= to choose)", names, names[0])
        name = names[0]
    path = _require(RootPaths(root).curriculum_manifest(name), root, "curriculum", profile)
    return {"name": name, **read_manifest(path)}


# ----------------------------------------------------------------------------------------------------
# Outputs of a notebook
# ----------------------------------------------------------------------------------------------------

def savefig(fig, out_dir: str | os.PathLike, name: str, dpi: int = 150) -> dict[str, Path]:
    """Save ``fig`` as ``<out_dir>/figures/<name>.png`` and ``.pdf`` (atomic, :func:`sent.artifacts.save_figure`;
    the figure stays open); returns ``{"png": path, "pdf": path}``. Each defect :func:`sent.figure_checks.figure_problems`
    finds (text outside the figure, a legend over data, an empty panel without a note, ...) is logged as a warning."""
    from sent.figure_checks import figure_problems

    for problem in figure_problems(fig):  # what a reviewer would see (docs/FIGURES-STYLE.md), said, not hidden
        logger.warning("figure %s: %s", name, problem)
    png, pdf = save_figure(fig, Path(out_dir) / "figures" / name, dpi=dpi, tight_layout=False, bbox_inches="tight",
                           close=False)
    return {"png": png, "pdf": pdf}


def write_status(out_dir: str | os.PathLike, name: str, status: dict) -> Path:
    """Write ``<out_dir>/tables/<name>_status.json`` (what a notebook could not produce and why)."""
    path = Path(out_dir) / "tables" / f"{name}_status.json"
    atomic_write_text(path, json.dumps(status, indent=2, sort_keys=True, default=str) + "\n")
    return path


def paper_reference_for(profile: str) -> str | None:
    """Which paper table set is comparable to ``profile``: the 1.5B tables are the only ones known.

    ``paper-7b`` / ``paper-14b`` have no known paper numbers (reference/paper.md §2.2): returns None.
    """
    return None if profile in ("paper-7b", "paper-14b") else "DeepSeek-R1-Distill-Qwen-1.5B"
