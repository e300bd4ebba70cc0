"""SE curriculum: sort questions by semantic entropy (ascending) and split them into N stages (SENT §3.1).

The paper sorts the training set by H_SE and trains on stages D_1..D_N from low to high SE; the released scripts use
N = 2 stages, each trained for 5 epochs, stage 2 starting from the stage-1 checkpoint (paper.md §1.3). How the stage
boundaries were chosen is UNKNOWN, so three methods are offered:

* ``"equal"``: N stages of (nearly) equal size in sorted order; earlier stages take the remainder, as
  ``np.array_split`` (6 rows, 4 stages -> sizes 2, 2, 1, 1);
* ``"thresholds"``: N-1 ascending SE cut points; stage i holds ``t_{i-1} < se <= t_i`` (so ``thresholds=[0]``
  separates the questions with SE exactly 0, the old script names hint at splits at 0 and/or 2);
* ``"quantiles"``: N-1 ascending fractions in (0, 1); stage i holds sorted positions ``[q_{i-1} M, q_i M)``, so stage
  sizes follow the fractions exactly even with many tied SE values.

``order`` builds the controls that separate the order of the stages from their content (README "Take the
confound apart"): ``"se"`` (default) trains the stages from low to high SE; ``"reverse"`` trains the same stages from
high to low SE (the last stage is then the easiest); ``"random"`` keeps the stage sizes of the SE split but fills the
stages with a seeded random permutation of the table, so stages exist (fresh optimizer, new reference at each
boundary) but carry no SE information.

Ties in SE (many questions have SE = 0) are broken by a deterministic seeded key computed from ``prompt_id`` (from
the row position when there is no ``prompt_id``), so the same seed gives the same order whatever the input order.

Training order: :func:`build_curriculum_dataset` concatenates the stages (low SE first), each repeated for its
epochs, shuffled per (stage, epoch) and cut to whole generation batches; ``sent train`` feeds it to the trainer.

Artifacts (docs/ARCHITECTURE.md): ``<out>/stage_{1..N}.parquet`` (rows of the SE table in ascending SE) and
``manifest.json`` ``{"method", "n_stages", "seed", "source", "source_sha256", "stages": [{"index", "path", "size",
"se_min", "se_max"}], "thresholds", "quantiles"}``, written last, so its presence marks a complete curriculum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent.artifacts import manifest_file
from sent.io import atomic_write_json, atomic_write_parquet, require_artifact


logger = logging.getLogger(__name__)

METHODS = ("equal", "thresholds", "quantiles")
ORDERS = ("se", "reverse", "random")


def _tiebreak(df: pd.DataFrame, seed: int) -> np.ndarray:
    """A seeded pseudo-random uint64 per row, from ``prompt_id`` when present (order-independent)."""
    if "prompt_id" in df.columns:
        ids = df["prompt_id"].astype(str).tolist()
    else:
        ids = [str(i) for i in range(len(df))]
    return np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "little")
                     for i in ids], dtype=np.uint64)


def sort_by_se(df: pd.DataFrame, seed: int = 0, column: str = "se") -> pd.DataFrame:
    """Rows of ``df`` in ascending ``column`` (SE), ties broken by a seeded deterministic key; new 0..N-1 index."""
    if column not in df.columns:
        raise ValueError(f"df has no column {column!r} (the SE table from `sent semantic-entropy` has 'se')")
    se = df[column].to_numpy(dtype=np.float64)
    if np.isnan(se).any():
        raise ValueError(f"column {column!r} has {int(np.isnan(se).sum())} NaN values; drop or fill them first")
    order = np.lexsort((_tiebreak(df, seed), se))  # last key is the primary one
    return df.iloc[order].reset_index(drop=True)


def _check_cuts(values: Sequence[float] | None, n_stages: int | None, name: str, lo: float, hi: float) -> list[float]:
    if values is None or len(values) == 0:
        raise ValueError(f"method needs {name}: a list of n_stages - 1 ascending values")
    cuts = [float(v) for v in values]
    if n_stages is not None and len(cuts) != n_stages - 1:
        raise ValueError(f"{name} has {len(cuts)} values but n_stages={n_stages} needs {n_stages - 1}")
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"{name} must be strictly ascending, got {cuts}")
    if any(not lo < v < hi for v in cuts):
        raise ValueError(f"{name} must lie in ({lo}, {hi}), got {cuts}")
    return cuts


def split_stages(df: pd.DataFrame, n_stages: int | None = 2, method: str = "equal",
                 thresholds: Sequence[float] | None = None, quantiles: Sequence[float] | None = None,
                 seed: int = 0, column: str = "se", order: str = "se") -> list[pd.DataFrame]:
    """Split an SE table into ``n_stages`` curriculum stages from low to high SE (see the module docstring).

    ``order="reverse"`` returns the same stages from high to low SE; ``order="random"`` the same stage sizes filled
    with a seeded random permutation of the rows.

    With ``thresholds``/``quantiles`` given, ``n_stages=None`` means ``len(cuts) + 1``. Every stage must be
    non-empty. Example: se = [0, 0, 0.5, 1.2, 2.1], ``method="thresholds", thresholds=[0]`` -> sizes [2, 3].
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not valid; choose one of {METHODS}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r} is not valid; choose one of {ORDERS}")
    if method == "equal" and n_stages is None:
        raise ValueError("n_stages is required with method='equal'")
    if n_stages is not None and (not isinstance(n_stages, (int, np.integer)) or n_stages < 1):
        raise ValueError(f"n_stages must be an int >= 1, got {n_stages!r}")
    ordered = sort_by_se(df, seed=seed, column=column)
    m = len(ordered)
    if method == "equal":
        sizes = [m // n_stages + (i < m % n_stages) for i in range(n_stages)]  # as np.array_split
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    elif method == "quantiles":
        cuts = _check_cuts(quantiles, n_stages, "quantiles", 0.0, 1.0)
        bounds = [0] + [int(np.floor(q * m)) for q in cuts] + [m]
    else:
        cuts = _check_cuts(thresholds, n_stages, "thresholds", -np.inf, np.inf)
        se = ordered[column].to_numpy(dtype=np.float64)
        bounds = [0] + [int(np.searchsorted(se, t, side="right")) for t in cuts] + [m]
    stages = [ordered.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds, bounds[1:])]
    sizes = [len(s) for s in stages]
    if any(s == 0 for s in sizes):
        empty = [i + 1 for i, size in enumerate(sizes) if size == 0]
        shown = sizes if len(sizes) <= 8 else f"{sizes[:4]} ... {sizes[-2:]}"
        raise ValueError(f"method={method!r} leaves {len(empty)} of {len(sizes)} stages empty (first: stage "
                         f"{empty[0]}; sizes {shown} of {m} rows); use fewer stages or other thresholds/quantiles")
    if order == "reverse":
        return stages[::-1]
    if order == "random":
        shuffled = ordered.iloc[np.argsort(_tiebreak(ordered, seed + 7919), kind="stable")].reset_index(drop=True)
        return [shuffled.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds, bounds[1:])]
    return stages


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_sha256(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


def write_curriculum(df_or_path: pd.DataFrame | str | os.PathLike, out_dir: str | os.PathLike, n_stages: int | None = 2,
                     method: str = "equal", thresholds: Sequence[float] | None = None,
                     quantiles: Sequence[float] | None = None, seed: int = 0, order: str = "se") -> dict:
    """Split an SE table (DataFrame or parquet path) and write ``stage_{i}.parquet`` + ``manifest.json``.

    Returns the manifest. ``source`` is the path (``"<DataFrame>"`` for an in-memory table) and ``source_sha256``
    the file's sha256 (a hash of the table's contents for a DataFrame).
    """
    if isinstance(df_or_path, pd.DataFrame):
        df, source, digest = df_or_path, "<DataFrame>", _frame_sha256(df_or_path)
    else:
        path = require_artifact(df_or_path, "sent semantic-entropy")
        df, source, digest = pd.read_parquet(path), str(path), file_sha256(path)
    if "all_no_answer" in df.columns and df["se"].isna().any():
        # `sent semantic-entropy --unparsable exclude`: SE is undefined for a prompt none of whose answers has a
        # final answer; such prompts cannot be placed by SE, so they stay out of the curriculum (and say so).
        undefined = df["se"].isna() & df["all_no_answer"].astype(bool)
        if undefined.any():
            logger.warning("%d of %d prompts have no final answer in any sample (SE undefined under "
                           "--unparsable exclude): left out of the curriculum", int(undefined.sum()), len(df))
            df = df[~undefined].reset_index(drop=True)
    stages = split_stages(df, n_stages, method, thresholds=thresholds, quantiles=quantiles, seed=seed, order=order)
    out = Path(out_dir)
    records = []
    for i, stage in enumerate(stages, start=1):
        name = f"stage_{i}.parquet"
        atomic_write_parquet(out / name, stage, metadata={"stage": i, "method": method, "seed": seed, "order": order})
        records.append({"index": i, "path": name, "size": len(stage),
                        "se_min": float(stage["se"].min()), "se_max": float(stage["se"].max())})
        logger.info("stage %d: %d prompts, se in [%.3f, %.3f]", i, len(stage), records[-1]["se_min"],
                    records[-1]["se_max"])
    manifest = {"method": method, "order": order, "n_stages": len(stages), "seed": seed, "source": source,
                "source_sha256": digest, "stages": records,
                "thresholds": None if thresholds is None else [float(t) for t in thresholds],
                "quantiles": None if quantiles is None else [float(q) for q in quantiles]}
    atomic_write_json(manifest_file(out), manifest)
    return manifest


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a curriculum folder (or of the ``manifest.json`` file itself)."""
    p = Path(path)
    p = manifest_file(p) if p.is_dir() or p.suffix != ".json" else p
    require_artifact(p, "sent curriculum")
    return json.loads(p.read_text())


def load_stage(path: str | os.PathLike, index: int) -> pd.DataFrame:
    """Stage ``index`` (1-based, as in ``stage_{index}.parquet``) of the curriculum in folder ``path``."""
    manifest = read_manifest(path)
    stages = {s["index"]: s for s in manifest["stages"]}
    if index not in stages:
        raise ValueError(f"index={index} is not a stage of {path}; stages are {sorted(stages)} (1-based)")
    return pd.read_parquet(Path(path) / stages[index]["path"])


# ---------------------------------------------------------------------------------------------------------------------
# training order


def build_curriculum_dataset(stages, *, epochs_per_stage: int, prompts_per_generation: int, seed: int,
                             first_stage: int = 1):
    """Concatenate curriculum stages in order, each repeated ``epochs_per_stage`` times, shuffled per (stage, epoch).

    ``stages``: list of ``datasets.Dataset`` (stage 1 = lowest semantic entropy; a run without a curriculum is one
    stage). Each (stage, epoch) block is cut to a multiple of ``prompts_per_generation`` (verl's ``drop_last``), so
    a generation batch never mixes stages and the number of generation batches is
    ``sum(len(stage) // prompts_per_generation) * epochs_per_stage``. Adds an int ``stage`` column numbered from
    ``first_stage``. Use with ``shuffle_dataset=False`` (`sent train` sets it). The shuffles are seeded torch
    permutations, so a run's data order depends only on ``seed``.
    """
    import torch
    from datasets import concatenate_datasets

    if not stages:
        raise ValueError("stages is empty: pass at least one curriculum stage")
    blocks = []
    for index, stage in enumerate(stages, start=first_stage):
        n_keep = len(stage) // prompts_per_generation * prompts_per_generation
        if n_keep == 0:
            raise ValueError(f"stage {index} has {len(stage)} prompts, fewer than one generation batch "
                             f"({prompts_per_generation} prompts); lower the batch size or merge stages")
        stage = stage.add_column("stage", [index] * len(stage)) if "stage" not in stage.column_names else \
            stage.remove_columns("stage").add_column("stage", [index] * len(stage))
        for epoch in range(epochs_per_stage):
            g = torch.Generator().manual_seed(seed * 1_000_003 + index * 1_009 + epoch)
            order = torch.randperm(len(stage), generator=g)[:n_keep].tolist()
            blocks.append(stage.select(order))
    return concatenate_datasets(blocks)
