"""Artifact loaders and table builders for the reproduction notebooks.

The notebooks in ``notebooks/`` are thin: a ``parameters`` cell, then calls into this module (loading,
aggregation, tables) and :mod:`sent.report_plots` (figures). Everything here only *reads* the artifacts
described in ``docs/ARCHITECTURE.md``; nothing trains or samples. A missing artifact raises
:class:`sent.io.MissingArtifactError` naming the command that makes it.

Scores are percentages (0-100) like the paper's tables. Pass@k uses the unbiased estimator of
Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` per problem (``sent.metrics.pass_at_k``); Avg@k is the
mean accuracy over k samples per problem (``sent.metrics.avg_at_k``). Both are averaged over the problems
of a suite, then mean ± sample std over seeds (``n_seeds`` is always reported; one seed is labelled
"single seed").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import MissingArtifactError, atomic_path, atomic_write_text


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
#: The paper's "w/ Mask [18]" baseline is unidentified (no bibliography): shown from the paper, never run.
NOT_RUN_NOTE = "not run (unidentified)"
#: Cell text for our column of a method the paper does not have.
NOT_IN_PAPER = "not in paper"

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

def _seed_dirs(root: Path, runs: Sequence[str] | None) -> list[tuple[str, int, Path]]:
    out = []
    for run_dir in sorted((root / "runs").iterdir()):
        if not run_dir.is_dir() or (runs is not None and run_dir.name not in runs):
            continue
        for seed_dir in sorted(run_dir.glob("seed*")):
            if seed_dir.is_dir() and seed_dir.name[4:].isdigit():
                out.append((run_dir.name, int(seed_dir.name[4:]), seed_dir))
    return out


def read_metrics_jsonl(path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``metrics.jsonl``; a torn last line (run still writing) is skipped with a warning."""
    rows = []
    lines = Path(path).read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                logger.warning("%s: skipping incomplete last line", path)
                continue
            raise ValueError(f"{path}: line {i + 1} is not JSON; the metrics file is corrupt") from None
    return pd.DataFrame(rows)


def load_runs(root: str | os.PathLike, runs: Sequence[str] | None = None, profile: str | None = None) -> pd.DataFrame:
    """Per-step training metrics of every ``<root>/runs/<run>/seed<k>/metrics.jsonl``.

    Returns one row per (run, seed, step) with columns ``run, seed`` + the metrics keys
    (docs/ARCHITECTURE.md). ``runs`` restricts to those run names; a requested run with no metrics is
    an error naming the training command.
    """
    root = Path(root)
    _require(root / "runs", root, "train", profile)
    frames = []
    for run, seed, d in _seed_dirs(root, runs):
        f = d / "metrics.jsonl"
        if f.exists():
            df = read_metrics_jsonl(f)
            frames.append(df.assign(run=run, seed=seed))
    found = {f["run"].iat[0] for f in frames if len(f)}
    missing = [r for r in (runs or []) if r not in found]
    if missing or not found:
        path = root / "runs" / (missing[0] if missing else "<run>") / "seed0" / "metrics.jsonl"
        raise MissingArtifactError(path, artifact_command(profile or profile_of(root), "train"))
    df = pd.concat(frames, ignore_index=True)
    front = ["run", "seed", "step"]
    return df[front + [c for c in df.columns if c not in front]].sort_values(front, ignore_index=True)


def _read_eval_file(path: Path, run: str, seed: int) -> pd.DataFrame:
    df = pd.read_parquet(path)
    need = {"prompt_id", "sample_id", "correct"}
    if not need <= set(df.columns):
        raise ValueError(f"{path}: eval parquet lacks columns {sorted(need - set(df.columns))}")
    if "suite" not in df.columns:
        df["suite"] = path.stem
    return df.assign(run=run, seed=seed)


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
        base_dir = _require(root / "eval" / "base", root, "eval", profile)
        frames += [_read_eval_file(p, "base", 0) for p in sorted(base_dir.glob("*.parquet"))
                   if p.stem not in exclude_suites]
    if (root / "runs").exists():
        for run, seed, d in _seed_dirs(root, runs):
            frames += [_read_eval_file(p, run, seed) for p in sorted((d / "eval").glob("*.parquet"))
                       if p.stem not in exclude_suites]
    found = {f["run"].iat[0] for f in frames if len(f)}
    missing = [r for r in (runs or []) if r not in found]
    if missing or not frames:
        what = missing[0] if missing else "<run>"
        raise MissingArtifactError(root / "runs" / what / "seed0" / "eval", artifact_command(profile, "eval"))
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


def stage_boundaries(metrics: pd.DataFrame) -> list[tuple[int, int]]:
    """``(step, stage)`` of every curriculum stage start after the first, for ONE run/seed.

    A boundary is a line whose ``stage`` differs from the previous line's (docs/ARCHITECTURE.md).
    """
    if "stage" not in metrics.columns or "step" not in metrics.columns:
        raise ValueError("metrics needs columns 'step' and 'stage' (one run/seed of load_runs())")
    if metrics.get("run", pd.Series(dtype=str)).nunique() > 1 or metrics.get("seed", pd.Series()).nunique() > 1:
        raise ValueError("metrics holds several runs/seeds; select one, e.g. metrics[metrics.run == 'sent']")
    m = metrics.sort_values("step")
    stage = m["stage"].to_numpy()
    idx = np.flatnonzero(stage[1:] != stage[:-1]) + 1
    return [(int(m["step"].iat[i]), int(stage[i])) for i in idx]


def read_rollout_step(root: str | os.PathLike, run: str, seed: int = 0, step: int | None = None,
                      profile: str | None = None) -> pd.DataFrame:
    """Token-level rollouts of one recorded step (the last recorded one when ``step`` is None)."""
    root = Path(root)
    d = _require(root / "runs" / run / f"seed{seed}" / "rollouts", root, "train", profile)
    files = sorted(d.glob("step_*.parquet"))
    if step is not None:
        files = [f for f in files if f.name == f"step_{int(step):06d}.parquet"]
    if not files:
        name = f"step_{int(step):06d}.parquet" if step is not None else "step_*.parquet"
        raise MissingArtifactError(d / name, artifact_command(profile or profile_of(root), "train"))
    from sent.rollouts import read_rollouts

    return read_rollouts(d, steps=[int(files[-1].stem[5:])])


def recorded_steps(root: str | os.PathLike, run: str, seed: int = 0) -> list[int]:
    """Steps with a rollout file for ``run``/``seed`` (empty when none)."""
    d = Path(root) / "runs" / run / f"seed{seed}" / "rollouts"
    return sorted(int(p.stem[5:]) for p in d.glob("step_*.parquet")) if d.exists() else []


def load_se(root: str | os.PathLike, domain: str = "math", profile: str | None = None) -> pd.DataFrame:
    """The semantic-entropy table ``<root>/se/<domain>.parquet`` (one row per training prompt)."""
    root = Path(root)
    return pd.read_parquet(_require(root / "se" / f"{domain}.parquet", root, "se", profile))


def load_curriculum_manifest(root: str | os.PathLike, name: str | None = None, profile: str | None = None) -> dict:
    """``<root>/curriculum/<name>/manifest.json``; with ``name=None`` the only (or first) curriculum."""
    root = Path(root)
    cdir = _require(root / "curriculum", root, "curriculum", profile)
    if name is None:
        names = sorted(p.parent.name for p in cdir.glob("*/manifest.json"))
        if not names:
            raise MissingArtifactError(cdir / "<name>" / "manifest.json",
                                       artifact_command(profile or profile_of(root), "curriculum"))
        if len(names) > 1:
            logger.info("several curricula %s; using %s (pass name= to choose)", names, names[0])
        name = names[0]
    path = _require(cdir / name / "manifest.json", root, "curriculum", profile)
    return {"name": name, **json.loads(path.read_text())}


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------

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


def pass_at_k_table(eval_df: pd.DataFrame, ks: Sequence[int] = (8, 16, 32)) -> pd.DataFrame:
    """Pass@k (%) per run, suite and k, mean ± std over seeds (long: run, suite, k, mean, std, n_seeds).

    Pass@k per problem = 1 - C(n-c, k)/C(n, k) (unbiased, Chen et al. 2021), averaged over problems;
    NaN where fewer than k samples exist. The per-suite average over suites is the row ``suite="Avg."``.
    """
    return _with_avg(aggregate_seeds(_with_seed_avg(_per_seed_scores(eval_df, ks, "pass@k"))))


def avg_at_k_table(eval_df: pd.DataFrame, ks: Sequence[int] = (8, 16, 32)) -> pd.DataFrame:
    """Avg@k (%) per run, suite and k: mean accuracy over k samples per problem, averaged over problems."""
    return _with_avg(aggregate_seeds(_with_seed_avg(_per_seed_scores(eval_df, ks, "avg@k"))))


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


def format_cell(mean: float, std: float, n_seeds: int, digits: int = 2) -> str:
    """``"12.34 ± 1.20"`` for several seeds, ``"12.34"`` for one, ``"n/a"`` when undefined."""
    if mean is None or pd.isna(mean):
        return "n/a"
    if int(n_seeds) > 1 and not pd.isna(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _row_key(suite, k) -> tuple[str, str]:
    return (str(suite), "" if k is None or pd.isna(k) else str(int(k)))


def comparison_table(ours: pd.DataFrame | None, paper: pd.DataFrame | None, ours_label: str = "ours",
                     paper_label: str = "paper") -> pd.DataFrame:
    """Wide, display-ready table: rows (source, benchmark, k), columns = paper column labels.

    ``ours`` is the output of :func:`pass_at_k_table` / :func:`avg_at_k_table` (cells "mean ± std" over
    seeds; plus an ``n_seeds`` column); ``paper`` is :func:`load_paper_table`. Our "w/ Mask" cells say the
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
                rows[key][PAPER_COLUMNS[r.run]] = format_cell(r.mean, r.std, r.n_seeds)
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


def savefig(fig, out_dir: str | os.PathLike, name: str, dpi: int = 150) -> dict[str, Path]:
    """Save ``fig`` as ``<out_dir>/figures/<name>.png`` and ``.pdf`` (atomic); returns the paths."""
    fdir = Path(out_dir) / "figures"
    paths = {}
    for ext in ("png", "pdf"):
        paths[ext] = fdir / f"{name}.{ext}"
        with atomic_path(paths[ext], suffix=f".{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
    return paths


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


def ablation_table(pass_tab: pd.DataFrame, avg_tab: pd.DataFrame, group: str) -> pd.DataFrame:
    """One ablation group (:data:`ABLATIONS`): rows = configurations, columns = "Avg." Pass@k / Avg@k."""
    if group not in ABLATIONS:
        raise ValueError(f"group={group!r}: use one of {sorted(ABLATIONS)}")
    rows = []
    for run, label in ABLATIONS[group]:
        row = {"configuration": label, "run": run}
        for name, tab in (("Pass@k Avg.", pass_tab), ("Avg@k Avg.", avg_tab)):
            hit = tab[(tab.run == run) & (tab.suite == "Avg.")]
            row[name] = format_cell(*hit[["mean", "std", "n_seeds"]].iloc[0]) if len(hit) else "not run"
            if len(hit):
                row["n_seeds"] = int(hit["n_seeds"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows).set_index("configuration")
