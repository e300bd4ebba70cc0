"""Where every artifact lives and how it is read: run paths, root paths and the one reader of each artifact.

Layout (docs/ARCHITECTURE.md, "Data flow"): :class:`RootPaths` names the folders under an artifact root
(``base/``, ``se/``, ``curriculum/``, ``recipes/``, ``eval/base/``, ``analysis/``) and :class:`RunPaths` those
of one training run ``<root>/runs/<run>/seed<k>/``; :func:`iter_runs` lists the runs that exist.

Readers: rollouts (:func:`read_rollouts`, validated by :func:`sent.rollouts.validate_rollouts`), ``metrics.jsonl``
(:func:`read_metrics`), evaluation parquet files (:func:`read_eval_file`, :func:`eval_pass_at_k`), SE tables
(:func:`read_se_table`), the run's ``config.yaml`` (:func:`read_run_config`) and the DONE marker
(:func:`read_done`). Figures are saved by :func:`save_figure`. Writes go through :mod:`sent.io` (atomic).

JSON-lines files (:func:`read_jsonl`) are appended line by line, so a kill mid-write can leave the LAST line
half-written: a last line that does not parse is skipped with a logged warning. A line that does not parse
anywhere else is corruption and raises ``ValueError`` naming the file and the line number.

(About 580 lines, over the ~450 guideline on purpose: this module is the one home of every artifact path and
reader (docs/ARCHITECTURE.md), so that a reader is never written twice; its parts are short and independent.)
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sent.io import MissingArtifactError, atomic_path, atomic_write_text, require_artifact
from sent.locks import LOCK
from sent.rollouts import ROLLOUT_FILE, RolloutSchemaError, rollout_file_name, validate_rollouts


logger = logging.getLogger(__name__)

__all__ = [
    "RunPaths", "RootPaths", "iter_runs", "done_file", "final_dir", "eval_folder", "eval_file", "eval_summary_file",
    "manifest_file", "se_file", "se_samples_file", "lock_file", "se_lock_file",
    "stage_folder", "read_done",
    "write_done",
    "read_text", "read_jsonl", "append_jsonl", "truncate_jsonl", "config_file", "metrics_file", "metrics_row", "append_metrics", "read_metrics",
    "read_run_config",
    "rollouts_dir", "run_dir_of", "rollout_steps", "read_rollout_file", "read_rollouts", "RolloutSchemaError",
    "EVAL_REQUIRED", "eval_files", "read_eval_file", "eval_pass_at_k", "read_se_table", "save_figure",
]

#: File names inside a run (or curriculum stage) folder.
DONE = "DONE"
FINAL = "final"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
ROLLOUTS = "rollouts"
EVAL = "eval"
#: The per-suite summary of an eval folder (``sent eval``).
EVAL_SUMMARY = "summary.json"
#: The manifest of a curriculum folder (``sent.curriculum.write_curriculum``).
MANIFEST = "manifest.json"
#: Command named when rollouts are missing (reader callers with a profile name their own).
ROLLOUTS_COMMAND = "sent train --config <recipe.yaml> --record_rollouts_every N, or write your own in the rollout schema"
_SEED_DIR = re.compile(r"^seed(0|[1-9][0-9]*)$")


# ------------------------------------------------------------------------------------------------ paths


def done_file(folder: str | os.PathLike) -> Path:
    """The ``DONE`` marker of a run or curriculum-stage folder (``step <optimizer steps>``)."""
    return Path(folder) / DONE


def final_dir(folder: str | os.PathLike) -> Path:
    """The ``final/`` HF model folder of a run or curriculum-stage folder."""
    return Path(folder) / FINAL


def config_file(folder: str | os.PathLike) -> Path:
    """The ``config.yaml`` of a run or curriculum-stage folder (script, model and trainer settings)."""
    return Path(folder) / CONFIG


def metrics_file(folder: str | os.PathLike) -> Path:
    """The ``metrics.jsonl`` of a run folder (one JSON line per optimizer step, :func:`append_metrics`)."""
    return Path(folder) / METRICS


def eval_folder(folder: str | os.PathLike) -> Path:
    """The ``eval/`` folder of a run folder (``sent eval --model <run>/final`` writes there by default)."""
    return Path(folder) / EVAL


def eval_file(eval_dir: str | os.PathLike, suite: str) -> Path:
    """``<suite>.parquet`` of an eval folder."""
    return Path(eval_dir) / f"{suite}.parquet"


def eval_summary_file(eval_dir: str | os.PathLike) -> Path:
    """``summary.json`` of an eval folder: per suite, Pass@k / Avg@k and the sampling settings."""
    return Path(eval_dir) / EVAL_SUMMARY


def manifest_file(folder: str | os.PathLike) -> Path:
    """The ``manifest.json`` of a curriculum folder (its stages, sizes and source table)."""
    return Path(folder) / MANIFEST


def se_file(folder: str | os.PathLike, domain: str) -> Path:
    """The SE table of ``domain`` in an SE folder (``<root>/se`` or ``sent semantic-entropy --out``)."""
    return Path(folder) / f"{domain}.parquet"


def se_samples_file(folder: str | os.PathLike, domain: str) -> Path:
    """The sampled answers behind the SE table of ``domain`` in an SE folder."""
    return Path(folder) / f"{domain}_samples.parquet"


def lock_file(folder: str | os.PathLike) -> Path:
    """The writer lock of an output folder (run, eval, curriculum): ``<folder>/.lock`` (:mod:`sent.locks`)."""
    return Path(folder) / LOCK


def se_lock_file(folder: str | os.PathLike, domain: str) -> Path:
    """The writer lock of ``domain``'s SE tables in an SE folder (domains of one folder are written independently)."""
    return Path(folder) / f".{domain}{LOCK}"


def stage_folder(run_dir: str | os.PathLike, k: int) -> Path:
    """Folder of curriculum stage ``k`` (1-based) of a run folder: its config.yaml, checkpoints, final/ and DONE."""
    return Path(run_dir) / f"stage{int(k)}"


def read_done(folder: str | os.PathLike) -> int | None:
    """Optimizer steps recorded in ``<folder>/DONE``, or None when the marker does not exist."""
    path = done_file(folder)
    if not path.exists():
        return None
    return int(path.read_text().split()[1])


def write_done(folder: str | os.PathLike, steps: int) -> Path:
    """Write ``<folder>/DONE`` (``step <steps>``) atomically; returns its path."""
    path = done_file(folder)
    atomic_write_text(path, f"step {int(steps)}\n")
    return path


@dataclass(frozen=True)
class RunPaths:
    """Paths of one training run ``<root>/runs/<run>/seed<seed>/`` (nothing is created or checked)."""

    root: Path
    run: str
    seed: int

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or int(self.seed) < 0:
            raise ValueError(f"seed={self.seed!r} must be an integer >= 0")
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.run, str) or not self.run:
            raise ValueError(f"run={self.run!r} must be a non-empty name")

    @classmethod
    def from_dir(cls, path: str | os.PathLike, strict: bool = False) -> RunPaths | None:
        """Parse a ``<root>/runs/<run>/seed<k>`` folder (as written, not resolved); None for any other folder,
        or ``ValueError`` with ``strict=True``."""
        p = Path(path)
        match = _SEED_DIR.match(p.name)
        if match and p.parent.name and p.parent.parent.name == "runs":
            return cls(p.parent.parent.parent, p.parent.name, int(match.group(1)))
        if strict:
            raise ValueError(f"{p} is not a run folder <root>/runs/<run>/seed<k>")
        return None

    @property
    def name(self) -> str:
        """``<run>/seed<k>`` (the trainer's ``run_name``)."""
        return f"{self.run}/seed{self.seed}"

    @property
    def dir(self) -> Path:
        return self.root / "runs" / self.run / f"seed{self.seed}"

    @property
    def config(self) -> Path:
        return config_file(self.dir)

    @property
    def metrics(self) -> Path:
        return metrics_file(self.dir)

    @property
    def rollouts(self) -> Path:
        return self.dir / ROLLOUTS

    def rollout_file(self, step: int) -> Path:
        return self.rollouts / rollout_file_name(step)

    @property
    def eval_dir(self) -> Path:
        return eval_folder(self.dir)

    def eval_file(self, suite: str) -> Path:
        return eval_file(self.eval_dir, suite)

    @property
    def final(self) -> Path:
        return final_dir(self.dir)

    @property
    def done(self) -> Path:
        return done_file(self.dir)

    def stage_dir(self, k: int) -> Path:
        """Folder of curriculum stage ``k`` (1-based): its config.yaml, checkpoints, final/ and DONE."""
        return stage_folder(self.dir, k)

    @property
    def recipe(self) -> Path:
        """The resolved recipe ``<root>/recipes/<run>-seed<k>.yaml`` (``reproduce/pipeline.py``)."""
        return RootPaths(self.root).recipe(self.run, self.seed)

    def analysis(self, name: str) -> Path:
        """Output folder of ``sent analyze <name>`` for this run: ``<root>/analysis/<name>/<run>_seed<k>``."""
        return self.root / "analysis" / name / f"{self.run}_seed{self.seed}"


@dataclass(frozen=True)
class RootPaths:
    """Root-level artifacts of ``<root>`` (``artifacts/<profile>`` by default)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def base(self) -> Path:
        """The base model folder (``sent toy-base``)."""
        return self.root / "base"

    @property
    def base_eval(self) -> Path:
        """Evaluation of the base model: ``<root>/eval/base/<suite>.parquet``."""
        return self.root / "eval" / "base"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def se_dir(self) -> Path:
        return self.root / "se"

    def se(self, domain: str) -> Path:
        """SE table of ``domain``, one row per prompt."""
        return se_file(self.se_dir, domain)

    def se_samples(self, domain: str) -> Path:
        """Sampled answers behind the SE table of ``domain``, one row per answer."""
        return se_samples_file(self.se_dir, domain)

    @property
    def curricula(self) -> Path:
        return self.root / "curriculum"

    def curriculum(self, name: str) -> Path:
        """Curriculum folder (``stage_{i}.parquet`` + ``manifest.json``)."""
        return self.curricula / name

    def curriculum_manifest(self, name: str) -> Path:
        """``manifest.json`` of curriculum ``name``."""
        return manifest_file(self.curriculum(name))

    def recipe(self, run: str, seed: int) -> Path:
        return self.root / "recipes" / f"{run}-seed{int(seed)}.yaml"

    def analysis(self, name: str) -> Path:
        return self.root / "analysis" / name

    def model(self, name: str) -> Path:
        """A model converted to an HF folder (``sent train`` with a GGUF model, ``sent convert-model``)."""
        return self.root / "models" / name

    def run(self, run: str, seed: int) -> RunPaths:
        return RunPaths(self.root, run, seed)


def iter_runs(root: str | os.PathLike, runs: Iterable[str] | None = None) -> list[RunPaths]:
    """Every existing ``<root>/runs/<run>/seed<k>/`` folder (optionally only the ``runs`` named), sorted by run
    name then seed; empty when ``<root>/runs`` does not exist."""
    runs_dir = RootPaths(root).runs
    if not runs_dir.is_dir():
        return []
    wanted = None if runs is None else set(runs)
    out = []
    for run_dir in runs_dir.iterdir():
        if not run_dir.is_dir() or (wanted is not None and run_dir.name not in wanted):
            continue
        for seed_dir in run_dir.iterdir():
            match = _SEED_DIR.match(seed_dir.name)
            if match and seed_dir.is_dir():
                out.append(RunPaths(root, run_dir.name, int(match.group(1))))
    return sorted(out, key=lambda r: (r.run, r.seed))


# ------------------------------------------------------------------------------------------------ JSON lines


def read_text(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file; a file in another encoding is a ``ValueError`` naming the file, line and byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValueError(f"{path}: not UTF-8 text (line {line}, byte {column}: {data[err.start:err.start + 1]!r}); "
                         "save it as UTF-8") from None


def _jsonl_rows(path: str | os.PathLike) -> list[tuple[str, dict]]:
    """``(line, object)`` of each non-blank line, with the tolerance rule of the module docstring."""
    lines = read_text(path).splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append((line, json.loads(line)))
        except json.JSONDecodeError:
            if i == last:
                logger.warning("%s: skipping incomplete last line %d (a writer was killed or is still writing)",
                               path, i + 1)
                continue
            raise ValueError(f"{path}: line {i + 1} is not JSON; the file is corrupt") from None
    return rows


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The objects of a JSON-lines file; blank lines skipped; a torn LAST line skipped with a warning (see the module
    docstring); a bad line elsewhere raises ``ValueError`` naming the file and the 1-based line number."""
    return [obj for _, obj in _jsonl_rows(path)]


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON line to ``path`` (folders made) and flush."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()


def truncate_jsonl(path: str | os.PathLike, last_step: int, key: str = "step") -> None:
    """Keep the lines of ``path`` (unchanged) whose ``key`` is <= ``last_step`` (resume from a checkpoint), written
    atomically; a torn last line is dropped (:func:`read_jsonl`). Nothing happens when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return
    kept = [line for line, obj in _jsonl_rows(p) if obj[key] <= last_step]
    atomic_write_text(p, "".join(line + "\n" for line in kept))


def metrics_row(step: int, logs: dict) -> dict:
    """One ``metrics.jsonl`` row: ``step`` first, then the logged values with NaN written as null and ``stage``
    (averaged by the trainer's logging) rounded back to an int."""
    row = {"step": int(step)}
    for key, value in logs.items():
        row[key] = None if isinstance(value, float) and math.isnan(value) else value
    if row.get("stage") is not None:
        row["stage"] = int(round(row["stage"]))
    return row


def append_metrics(path: str | os.PathLike, step: int, logs: dict) -> None:
    """Append the row of optimizer step ``step`` (:func:`metrics_row`) to ``metrics.jsonl`` at ``path``. On resume
    from a checkpoint at step ``s`` the file is first cut with ``truncate_jsonl(path, s)``, so no step repeats."""
    append_jsonl(path, metrics_row(step, logs))


def read_metrics(path: str | os.PathLike):
    """``metrics.jsonl`` (the file, or a run folder holding it) as a DataFrame; None when the file does not exist."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        p = metrics_file(p)
    if not p.exists():
        return None
    return pd.DataFrame(read_jsonl(p))


def read_run_config(path: str | os.PathLike) -> dict | None:
    """The run's ``config.yaml`` (the file, or the run folder) as a dict, or None when it does not exist."""
    import yaml

    p = Path(path)
    if p.is_dir():
        p = config_file(p)
    if not p.exists():
        return None
    doc = yaml.safe_load(read_text(p))
    return doc if isinstance(doc, dict) else {}


# ------------------------------------------------------------------------------------------------ rollouts


def rollouts_dir(path: str | os.PathLike, command: str = ROLLOUTS_COMMAND) -> Path:
    """Accept a run folder (``runs/<run>/seed<k>``) or its ``rollouts/`` folder; return the latter, which must hold
    at least one ``step_*.parquet`` (else :class:`MissingArtifactError` naming ``command``)."""
    p = Path(path)
    if (p / ROLLOUTS).is_dir():
        p = p / ROLLOUTS
    if not rollout_steps(p):
        raise MissingArtifactError(p / "step_*.parquet", command)
    return p


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run folder holding metrics.jsonl / eval/ for ``path`` (a run folder or its rollouts/)."""
    p = Path(path)
    return p.parent if p.name == ROLLOUTS else p


def _rollout_files(directory: Path) -> dict[int, Path]:
    """``{step: file}`` of the ``step_<digits>.parquet`` files of ``directory`` (any number of digits); two files
    naming the same step (``step_7`` and ``step_000007``) raise :class:`RolloutSchemaError`."""
    if not directory.is_dir():
        return {}
    files = {}
    for path in sorted(directory.iterdir()):
        match = ROLLOUT_FILE.match(path.name)
        if match:
            step = int(match.group(1))
            if step in files:
                raise RolloutSchemaError(f"{files[step]} and {path.name} both name step {step}; keep one")
            files[step] = path
    return dict(sorted(files.items()))


def rollout_steps(path: str | os.PathLike) -> list[int]:
    """Steps named by the ``step_<digits>.parquet`` files under ``path`` (a run folder or its rollouts/), ascending;
    empty when there are none."""
    p = Path(path)
    if (p / ROLLOUTS).is_dir():
        p = p / ROLLOUTS
    return list(_rollout_files(p))


def read_rollout_file(path: str | os.PathLike):
    """One step file, validated (:func:`sent.rollouts.validate_rollouts`, errors name the file and the row); a file
    with no rows, or one that is not parquet, raises :class:`RolloutSchemaError`."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise RolloutSchemaError(f"{path}: not a readable parquet file ({' '.join(str(err).split())[:200]})") from None
    if len(df) == 0:
        raise RolloutSchemaError(f"{path}: empty step file (no rows); delete it or write the step's responses")
    return validate_rollouts(df, source=path)


def _may_hold_steps(path: Path, wanted: list[int]) -> bool:
    """False only when ``path``'s ``step`` column is readable and holds none of ``wanted`` (a cheap column read)."""
    import pyarrow.parquet as pq

    try:
        values = pq.read_table(path, columns=["step"]).column("step").to_pylist()
    except Exception:  # unreadable or no step column: let the full read report it
        return True
    return any(v in wanted for v in values if v is not None) or not values


def read_rollouts(path: str | os.PathLike, steps: Iterable[int] | None = None, command: str = ROLLOUTS_COMMAND):
    """The ``step_*.parquet`` files under ``path`` (a run folder or its rollouts/) as one validated DataFrame,
    optionally only the rows whose ``step`` column is in ``steps``. Each file is validated on its own, so an error
    names the file, the row and the column. No file (or no row of ``steps``) raises :class:`MissingArtifactError`
    naming ``command``. An optional token column missing from some files is left out (with a warning)."""
    import pandas as pd

    directory = rollouts_dir(path, command)
    files = list(_rollout_files(directory).values())
    if steps is not None:
        wanted = sorted({int(s) for s in steps})
        files = [f for f in files if _may_hold_steps(f, wanted)]
        if not files:
            name = rollout_file_name(wanted[0]) if len(wanted) == 1 else "step_*.parquet"
            raise MissingArtifactError(directory / name, command)
    frames = [read_rollout_file(p) for p in files]
    columns = [set(f.columns) for f in frames]
    partial = sorted(set.union(*columns) - set.intersection(*columns))
    if partial:
        logger.warning("%s: columns %s are missing from some step files; left out", directory, partial)
        frames = [f.drop(columns=[c for c in partial if c in f.columns]) for f in frames]
    df = pd.concat(frames, ignore_index=True)
    if steps is not None:
        wanted = sorted({int(s) for s in steps})
        df = df[df["step"].isin(wanted)].reset_index(drop=True)
        if df.empty:
            name = rollout_file_name(wanted[0]) if len(wanted) == 1 else "step_*.parquet"
            raise MissingArtifactError(directory / name, command)
    return df


# ------------------------------------------------------------------------------------------------ eval, SE


#: Columns every evaluation parquet must have (docs/ARCHITECTURE.md, "Evaluation").
EVAL_REQUIRED = ("prompt_id", "sample_id", "correct")


def eval_files(eval_dir: str | os.PathLike) -> list[Path]:
    """``<suite>.parquet`` files of an eval folder, sorted by suite; empty when there are none."""
    return sorted(Path(eval_dir).glob("*.parquet"))


def read_eval_file(path: str | os.PathLike, columns: Iterable[str] | None = None):
    """One ``eval/<suite>.parquet``: all columns (``prompt_id, sample_id, correct`` required; ``suite`` filled from
    the file name when absent) or only ``columns`` (each required). Missing columns raise ``ValueError``."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    need = list(columns) if columns is not None else list(EVAL_REQUIRED)
    have = set(pq.read_schema(path).names)
    if not set(need) <= have:
        raise ValueError(f"{path}: eval parquet lacks columns {sorted(set(need) - have)}")
    df = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    if columns is None and "suite" not in df.columns:
        df["suite"] = path.stem
    return df


def eval_pass_at_k(run_dir: str | os.PathLike, ks: tuple[int, ...] = (1, 4, 8, 16)):
    """Pass@k (fraction, unbiased estimator) per suite from ``<run_dir>/eval/*.parquet``; k above the smallest
    sample count of a suite is left out; an empty frame when there is no eval file."""
    import numpy as np
    import pandas as pd

    from sent.metrics import pass_at_k

    rows = []
    for f in eval_files(Path(run_dir) / EVAL):
        per = read_eval_file(f, ["prompt_id", "correct"]).groupby("prompt_id")["correct"].agg(["size", "sum"])
        for k in ks:
            if k > per["size"].min():
                continue
            vals = pass_at_k(per["size"].to_numpy(), per["sum"].to_numpy(), k)
            rows.append({"suite": f.stem, "k": k, "pass_at_k": float(np.mean(vals)), "n_prompts": len(per)})
    return pd.DataFrame(rows, columns=["suite", "k", "pass_at_k", "n_prompts"])


def read_se_table(root: str | os.PathLike, domain: str = "math", *, samples: bool = False,
                  command: str | None = None):
    """``<root>/se/<domain>.parquet`` (or ``_samples.parquet``); missing: :class:`MissingArtifactError` naming
    ``command`` (default ``sent semantic-entropy --root <root> --domain <domain>``)."""
    import pandas as pd

    paths = RootPaths(root)
    path = paths.se_samples(domain) if samples else paths.se(domain)
    require_artifact(path, command or f"sent semantic-entropy --root {root} --domain {domain}")
    return pd.read_parquet(path)


# ------------------------------------------------------------------------------------------------ figures


def save_figure(fig, path_stem: str | os.PathLike, *, dpi: int = 130, tight_layout: bool = True,
                bbox_inches: str | None = None, close: bool = True) -> list[Path]:
    """Save ``fig`` as ``<path_stem>.png`` and ``.pdf`` (folders made, each written atomically); returns
    ``[png, pdf]``. Defaults are the analyses' (``tight_layout``, dpi 130, figure closed);
    :func:`sent.report.savefig` passes the notebooks' (``bbox_inches="tight"``, dpi 150, figure kept open)."""
    if tight_layout:
        fig.tight_layout()
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    for p in paths:
        ext = p.suffix[1:]
        with atomic_path(p, suffix=p.suffix) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches=bbox_inches)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths
