"""Statistics for comparing methods: bootstrap intervals over problems and seeds, paired differences, and the
probability of improvement.

Why these estimators. A table cell (a method's Pass@k on a suite, or the suites' average) has two sources of
noise: the training seed and the finite set of evaluation problems. With a few seeds and a few dozen problems per
suite, the second is often the larger one, so an interval that resamples seeds only is too narrow. Every interval
here is a percentile bootstrap that resamples **seeds** (independently per method) and **problems within their
suite** (stratified, so every replicate keeps each suite's size and weight), as in the stratified bootstrap of
Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice" (rliable), where runs are resampled within
each task. Differences between two methods are **paired on problems**: one problem resampling is shared by both
methods, so the problem-difficulty noise common to both cancels, while their seeds are resampled independently
(seed k of one method has nothing in common with seed k of another beyond the base model).

The probability of improvement P(X > Y) is rliable's: per task (here: per suite), the Mann-Whitney U statistic over
all pairs of runs (x_i of method X, y_j of method Y: 1 if x_i > y_j, 1/2 if equal, 0 otherwise), averaged over pairs
and then over tasks; its interval resamples each method's runs within each task. (The rliable package itself does
not import with current pandas, so the definitions are reimplemented here.)

All bootstrap functions are vectorised (a replicate is a pair of count vectors, so a statistic is two matrix
products) and deterministic: the generator is seeded, never from the clock.

Inputs are per-problem scores: a frame with columns ``run, seed, suite, prompt_id, value`` (one row per problem of a
seed's evaluation; ``value`` in percent), made from ``sent eval`` samples by :func:`problem_scores`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


N_BOOT = 2000  # bootstrap replicates; the CI bounds move by < 0.1 points between 2000 and 10000 on the cpu profile
CONFIDENCE = 0.95
BOOT_SEED = 20251204  # fixed so the same scores always give the same interval


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile-bootstrap interval (``lo``, ``hi``) at ``confidence``."""

    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_problems: int
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0

    @property
    def excludes_zero(self) -> bool:
        """For a difference: the interval lies entirely above or entirely below 0 (the difference is resolved)."""
        return bool(self.lo > 0 or self.hi < 0)

    def format(self, digits: int = 1, signed: bool = False) -> str:
        """``"40.9 [38.2, 43.5]"``; ``signed`` writes a difference as ``"+6.5 [+0.9, +12.1]"``."""
        if not np.isfinite(self.mean):
            return "n/a"
        f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        return f"{f.format(self.mean)} [{f.format(self.lo)}, {f.format(self.hi)}]"


# ----------------------------------------------------------------------------------------------------
# Per-problem scores
# ----------------------------------------------------------------------------------------------------

def problem_scores(eval_df: pd.DataFrame, ks: Sequence[int], metric: str = "pass@k") -> pd.DataFrame:
    """Per-problem score (percent) averaged over ``ks``: columns ``run, seed, suite, prompt_id, value``.

    ``eval_df`` holds ``sent eval`` samples (``run, seed, suite, prompt_id, sample_id, correct``). ``metric`` is
    ``"pass@k"`` (unbiased estimator, Chen et al. 2021) or ``"avg@k"`` (mean accuracy of the first k samples).
    Averaging over k per problem and then over problems and suites gives exactly the tables' "Avg." cell (the
    mean of the suite x k cells), because every cell of one suite averages the same problems.
    """
    from sent.metrics import avg_at_k, pass_at_k

    if metric not in ("pass@k", "avg@k"):
        raise ValueError(f"metric must be 'pass@k' or 'avg@k', got {metric!r}")
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    frames = []
    for (run, seed, suite), g in eval_df.groupby(["run", "seed", "suite"], sort=True):
        wide = g.pivot_table(index="prompt_id", columns="sample_id", values="correct", aggfunc="first")
        if wide.isna().any().any():
            raise ValueError(f"eval of run={run} seed={seed} suite={suite}: problems have different sample counts; "
                             "re-run `sent eval` so every problem has the same n")
        correct = wide.to_numpy(dtype=bool)
        n = correct.shape[1]
        if max(ks) > n:
            raise ValueError(f"eval of run={run} seed={seed} suite={suite} has {n} samples per problem, fewer than "
                             f"k={max(ks)}; evaluate with --k {max(ks)} or more")
        if metric == "pass@k":
            per_k = [pass_at_k(np.full(len(correct), n), correct.sum(1), k) for k in ks]
        else:
            per_k = [avg_at_k(correct, k, reduce=False) for k in ks]
        frames.append(pd.DataFrame({"run": run, "seed": int(seed), "suite": suite, "prompt_id": wide.index,
                                    "value": 100.0 * np.mean(per_k, axis=0)}))
    if not frames:
        raise ValueError("no evaluation samples to score")
    return pd.concat(frames, ignore_index=True)


def _matrix(scores: pd.DataFrame, problems: pd.MultiIndex) -> np.ndarray:
    """(seeds, problems) matrix of one run's scores, problems in the order of ``problems``."""
    wide = scores.pivot_table(index="seed", columns=["suite", "prompt_id"], values="value", aggfunc="first")
    missing = problems.difference(wide.columns)
    if len(missing):
        raise ValueError(f"run {scores.run.iloc[0]!r} lacks scores for {len(missing)} problem(s), e.g. "
                         f"{list(missing[:3])}; every seed must be evaluated on the same problems")
    mat = wide.reindex(columns=problems).to_numpy(dtype=np.float64)
    if not np.isfinite(mat).all():
        raise ValueError(f"run {scores.run.iloc[0]!r}: some seed lacks scores for some problems "
                         "(evaluate every seed on every suite)")
    return mat


def _problem_weights(problems: pd.MultiIndex) -> tuple[np.ndarray, list[np.ndarray]]:
    """Weight per problem (each suite weighs the same; problems equally within it) and the index set per suite."""
    suites = problems.get_level_values(0).to_numpy()
    strata = [np.flatnonzero(suites == s) for s in pd.unique(suites)]
    w = np.empty(len(problems))
    for idx in strata:
        w[idx] = 1.0 / (len(strata) * len(idx))
    return w, strata


def _seed_counts(rng: np.random.Generator, n_seeds: int, n_boot: int) -> np.ndarray:
    """(B, S) resampling weights over seeds, each row summing to 1."""
    return rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot) / n_seeds


def _problem_counts(rng: np.random.Generator, w: np.ndarray, strata: list[np.ndarray], n_boot: int) -> np.ndarray:
    """(B, P) resampling weights over problems, resampled within each suite, times the problem weights."""
    counts = np.zeros((n_boot, len(w)))
    for idx in strata:
        counts[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return counts * w


def _interval(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _common_problems(scores: pd.DataFrame, runs: Iterable[str]) -> pd.MultiIndex:
    sets = [pd.MultiIndex.from_frame(scores.loc[scores.run == r, ["suite", "prompt_id"]]).unique() for r in runs]
    common = sets[0]
    for s in sets[1:]:
        common = common.intersection(s)
    if len(common) == 0:
        raise ValueError(f"runs {list(runs)} share no evaluated problems")
    return common.sort_values()


# ----------------------------------------------------------------------------------------------------
# Intervals
# ----------------------------------------------------------------------------------------------------

def run_estimate(scores: pd.DataFrame, run: str, *, suites: Sequence[str] | None = None, n_boot: int = N_BOOT,
                 confidence: float = CONFIDENCE, seed: int = BOOT_SEED) -> Estimate:
    """Mean over seeds of the suite-averaged score of ``run`` (or of the given ``suites``), with its interval."""
    sub = scores[scores.run == run]
    if suites is not None:
        sub = sub[sub.suite.isin(list(suites))]
    if sub.empty:
        raise ValueError(f"no scores for run {run!r}" + (f" on suites {list(suites)}" if suites else ""))
    problems = _common_problems(sub, [run])
    X = _matrix(sub, problems)
    w, strata = _problem_weights(problems)
    rng = np.random.default_rng(seed)
    reps = ((_seed_counts(rng, X.shape[0], n_boot) @ X) * _problem_counts(rng, w, strata, n_boot)).sum(1)
    lo, hi = _interval(reps, confidence)
    return Estimate(float(X.mean(0) @ w), lo, hi, X.shape[0], len(problems), confidence)


def paired_difference(scores: pd.DataFrame, run: str, baseline: str, *, suites: Sequence[str] | None = None,
                      n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = BOOT_SEED) -> Estimate:
    """``run`` minus ``baseline`` on the problems both were evaluated on: seeds resampled per method, problems
    resampled once for both (paired). ``Estimate.excludes_zero`` says whether the difference is resolved."""
    sub = scores[scores.run.isin([run, baseline])]
    if suites is not None:
        sub = sub[sub.suite.isin(list(suites))]
    for r in (run, baseline):
        if not (sub.run == r).any():
            raise ValueError(f"no scores for run {r!r}")
    problems = _common_problems(sub, [run, baseline])
    Xa, Xb = _matrix(sub[sub.run == run], problems), _matrix(sub[sub.run == baseline], problems)
    w, strata = _problem_weights(problems)
    rng = np.random.default_rng(seed)
    wa, wb = _seed_counts(rng, Xa.shape[0], n_boot), _seed_counts(rng, Xb.shape[0], n_boot)
    reps = ((wa @ Xa - wb @ Xb) * _problem_counts(rng, w, strata, n_boot)).sum(1)
    lo, hi = _interval(reps, confidence)
    return Estimate(float((Xa.mean(0) - Xb.mean(0)) @ w), lo, hi, min(Xa.shape[0], Xb.shape[0]), len(problems),
                    confidence)


def _u_statistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mann-Whitney U / (n m) along the last axis pairs: x (..., n), y (..., m) -> (...)."""
    gt = (x[..., :, None] > y[..., None, :]).mean((-1, -2))
    eq = (x[..., :, None] == y[..., None, :]).mean((-1, -2))
    return gt + 0.5 * eq


def suite_seed_scores(scores: pd.DataFrame, run: str, suites: Sequence[str]) -> np.ndarray:
    """(suites, seeds) matrix: each seed's mean score over the problems of each suite."""
    sub = scores[(scores.run == run) & scores.suite.isin(list(suites))]
    wide = sub.groupby(["suite", "seed"])["value"].mean().unstack("seed")
    wide = wide.reindex(list(suites))
    if wide.isna().any().any():
        raise ValueError(f"run {run!r} lacks a seed's scores on some suite of {list(suites)}")
    return wide.to_numpy(dtype=np.float64)


def probability_of_improvement(scores: pd.DataFrame, run: str, baseline: str, *, n_boot: int = N_BOOT,
                               confidence: float = CONFIDENCE, seed: int = BOOT_SEED) -> Estimate:
    """P(run > baseline): rliable's probability of improvement with suites as tasks and seeds as runs.

    0.5 means no difference in ranking; with 3 seeds per method there are 9 pairs per suite, so the value moves in
    steps of 1/9 per suite. The interval resamples each method's seeds within each suite.
    """
    suites = sorted(set(scores.suite[scores.run == run]) & set(scores.suite[scores.run == baseline]))
    if not suites:
        raise ValueError(f"runs {run!r} and {baseline!r} share no suite")
    X, Y = suite_seed_scores(scores, run, suites), suite_seed_scores(scores, baseline, suites)
    point = float(_u_statistic(X, Y).mean())
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, X.shape[1], size=(n_boot, X.shape[0], X.shape[1]))
    iy = rng.integers(0, Y.shape[1], size=(n_boot, Y.shape[0], Y.shape[1]))
    rows = np.arange(X.shape[0])[None, :, None]
    reps = _u_statistic(X[rows, ix], Y[rows, iy]).mean(-1)
    lo, hi = _interval(reps, confidence)
    return Estimate(point, lo, hi, min(X.shape[1], Y.shape[1]), len(suites), confidence)


# ----------------------------------------------------------------------------------------------------
# Tables and curves
# ----------------------------------------------------------------------------------------------------

def estimates_table(scores: pd.DataFrame, runs: Sequence[str] | None = None, *, n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per run and suite (plus ``suite="Avg."``): ``mean, lo, hi, n_seeds, n_problems``."""
    runs = list(runs) if runs is not None else list(pd.unique(scores.run))
    rows = []
    for run in runs:
        for suite in sorted(set(scores.suite[scores.run == run])) + ["Avg."]:
            est = run_estimate(scores, run, suites=None if suite == "Avg." else [suite], n_boot=n_boot)
            rows.append(dict(run=run, suite=suite, mean=est.mean, lo=est.lo, hi=est.hi, n_seeds=est.n_seeds,
                             n_problems=est.n_problems))
    return pd.DataFrame(rows)


def differences_table(scores: pd.DataFrame, baseline: str, runs: Sequence[str] | None = None, *,
                      n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per run (not the baseline): the suite-averaged paired difference vs ``baseline`` with its interval,
    whether the interval excludes 0, and the probability of improvement with its interval."""
    runs = [r for r in (runs if runs is not None else pd.unique(scores.run)) if r != baseline]
    return pd.DataFrame([compare(scores, run, baseline, n_boot=n_boot) for run in runs], columns=COMPARISON_COLUMNS)


COMPARISON_COLUMNS = ["run", "baseline", "diff", "lo", "hi", "resolved", "poi", "poi_lo", "poi_hi", "n_seeds",
                      "n_problems"]


def compare(scores: pd.DataFrame, run: str, baseline: str, *, n_boot: int = N_BOOT) -> dict:
    """One comparison row: the paired difference ``run - baseline`` with its interval and whether it is resolved,
    and the probability of improvement with its interval (columns :data:`COMPARISON_COLUMNS`)."""
    d = paired_difference(scores, run, baseline, n_boot=n_boot)
    p = probability_of_improvement(scores, run, baseline, n_boot=n_boot)
    return dict(run=run, baseline=baseline, diff=d.mean, lo=d.lo, hi=d.hi, resolved=d.excludes_zero, poi=p.mean,
                poi_lo=p.lo, poi_hi=p.hi, n_seeds=d.n_seeds, n_problems=d.n_problems)


def seed_spread(scores: pd.DataFrame, run: str) -> float:
    """Sample standard deviation over seeds of the suite-averaged score (NaN for one seed)."""
    sub = scores[scores.run == run]
    per_seed = sub.groupby(["seed", "suite"])["value"].mean().groupby("seed").mean()
    return float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")


def seed_band(frame: pd.DataFrame, x: str, y: str, by: Sequence[str] = ("run",)) -> pd.DataFrame:
    """Curve over seeds: per ``by`` and ``x``, the mean of ``y`` and a band of mean ± one standard deviation over
    seeds (columns ``mean, lo, hi, n_seeds``; no band where only one seed has a value at that ``x``)."""
    g = frame.dropna(subset=[y]).groupby([*by, x])[y]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["lo"] = out["mean"] - out["std"]
    out["hi"] = out["mean"] + out["std"]
    return out.drop(columns="std")
