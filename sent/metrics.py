"""Evaluation metrics: unbiased Pass@k, "any of the first k" Pass@k, Avg@k, and a small summary helper.

Pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): with n samples of which c are
correct, the unbiased estimate of the probability that at least one of k samples is correct is

    pass@k = 1 - C(n-c, k) / C(n, k) = 1 - Π_{i=n-c+1}^{n} (1 - k / i)

(the product form avoids huge binomials), and 1 when n - c < k. The paper's Table I reports Pass@k ("at least one of
K sampled outputs passes verification") and Table II Avg@k ("average accuracy over K evaluations"), k = 8, 16, 32.
"""

from __future__ import annotations

import numpy as np


def _pass_at_k_scalar(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _as_int_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or
                                 (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))):
        raise ValueError(f"{name} must be a non-negative integer (or array of them), got {x!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative, got {x!r}")
    return arr.astype(np.int64)


def pass_at_k(n, c, k: int):
    """Unbiased Pass@k per problem; ``n``, ``c`` are ints or equal-shape arrays, ``k`` an int.

    ``pass_at_k(5, 2, 2)`` = 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7; ``pass_at_k(5, 4, 2)`` = 1 (n - c < k).
    Returns a float for scalar input, else an array of the broadcast shape.
    """
    n_arr, c_arr = _as_int_array(n, "n"), _as_int_array(c, "c")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    try:
        n_arr, c_arr = np.broadcast_arrays(n_arr, c_arr)
    except ValueError as err:
        raise ValueError(f"n and c must have the same shape, got {np.shape(n)} and {np.shape(c)}") from err
    if np.any(c_arr > n_arr):
        raise ValueError("c (correct samples) must be <= n (samples) for every problem")
    if np.any(k > n_arr):
        raise ValueError(f"k={k} is larger than n={int(n_arr.min())} samples; sample at least k answers per problem")
    out = np.array([_pass_at_k_scalar(int(a), int(b), k) for a, b in zip(n_arr.ravel(), c_arr.ravel())])
    out = out.reshape(n_arr.shape)
    return float(out) if out.ndim == 0 else out


def _check_matrix(correct, k: int) -> np.ndarray:
    mat = np.asarray(correct)
    if mat.ndim != 2:
        raise ValueError(f"correct must be a (P, n) matrix of bools (problems x samples), got shape {mat.shape}")
    if mat.dtype != bool:
        if not np.isin(mat, (0, 1)).all():
            raise ValueError("correct must contain only booleans (or 0/1)")
        mat = mat.astype(bool)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if k > mat.shape[1]:
        raise ValueError(f"k={k} is larger than the number of samples per problem n={mat.shape[1]}")
    return mat


def pass_at_k_any(correct, k: int, reduce: bool = True):
    """Pass@k as "any of the FIRST k samples is correct" (biased, but what a k-sample run observes).

    ``correct``: (P, n) bool matrix. Returns the mean over problems, or the (P,) per-problem values if not ``reduce``.
    """
    mat = _check_matrix(correct, k)
    per_problem = mat[:, :k].any(axis=1).astype(np.float64)  # (P,)
    return float(per_problem.mean()) if reduce else per_problem


def avg_at_k(correct, k: int, reduce: bool = True):
    """Avg@k: mean accuracy of the first k samples per problem; mean over problems unless ``reduce=False``."""
    mat = _check_matrix(correct, k)
    per_problem = mat[:, :k].mean(axis=1)  # (P,)
    return float(per_problem.mean()) if reduce else per_problem


def entropy_summary(values) -> dict[str, float]:
    """``{"n", "mean", "median", "p20", "p80"}`` of finite ``values`` (NaN dropped); NaNs when none are finite."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"n": 0, "mean": float("nan"), "median": float("nan"), "p20": float("nan"), "p80": float("nan")}
    p20, med, p80 = np.percentile(arr, [20, 50, 80])
    return {"n": int(arr.size), "mean": float(arr.mean()), "median": float(med), "p20": float(p20),
            "p80": float(p80)}
