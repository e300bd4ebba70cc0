"""sent.stats against hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from sent import stats as S


def scores(rows):
    """rows: (run, seed, suite, prompt_id, value)."""
    return pd.DataFrame(rows, columns=["run", "seed", "suite", "prompt_id", "value"])


def test_problem_scores_unbiased_pass_at_k_and_avg_over_k():
    # one problem, 4 samples, 2 correct: pass@1 = 0.5, pass@2 = 1 - C(2,2)/C(4,2) = 5/6
    ev = pd.DataFrame({"run": "a", "seed": 0, "suite": "s", "prompt_id": "p", "sample_id": range(4),
                       "correct": [True, False, True, False]})
    out = S.problem_scores(ev, ks=[1, 2])
    assert out.value.iloc[0] == pytest.approx(100 * (0.5 + 5 / 6) / 2)
    avg = S.problem_scores(ev, ks=[2], metric="avg@k")  # first two samples: 1 of 2 correct
    assert avg.value.iloc[0] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="fewer than k=8"):
        S.problem_scores(ev, ks=[8])


def test_two_problem_interval_is_the_bootstrap_distribution_quantiles():
    # one seed, problems 0 and 100: replicate means 0, 50, 100 with probabilities 1/4, 1/2, 1/4
    est = S.run_estimate(scores([("a", 0, "s", "p1", 0.0), ("a", 0, "s", "p2", 100.0)]), "a")
    assert est.mean == 50.0 and (est.lo, est.hi) == (0.0, 100.0)
    assert est.n_seeds == 1 and est.n_problems == 2


def test_stratified_resampling_keeps_each_suite_weight():
    # suite A: one problem at 100; suite B: three problems at 0. Suites weigh the same -> 50, and a stratified
    # bootstrap can never change it (an unstratified one would draw anything from 0 to 100).
    df = scores([("a", 0, "A", "p0", 100.0)] + [("a", 0, "B", f"q{i}", 0.0) for i in range(3)])
    est = S.run_estimate(df, "a")
    assert (est.mean, est.lo, est.hi) == (50.0, 50.0, 50.0)


def test_seed_resampling_widens_the_interval():
    # two seeds whose every problem differs by 20 points: problems are identical within a seed
    rows = [("a", s, "s", f"p{i}", 40.0 + 20 * s) for s in (0, 1) for i in range(5)]
    est = S.run_estimate(scores(rows), "a")
    assert est.mean == 50.0 and est.lo == pytest.approx(40.0) and est.hi == pytest.approx(60.0)


def test_paired_difference_cancels_problem_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, size=30)
    rows = [("b", 0, "s", f"p{i}", v) for i, v in enumerate(base)]
    rows += [("a", 0, "s", f"p{i}", v + 5.0) for i, v in enumerate(base)]
    d = S.paired_difference(scores(rows), "a", "b")
    assert d.mean == pytest.approx(5.0) and d.lo == pytest.approx(5.0) and d.hi == pytest.approx(5.0)
    assert d.excludes_zero
    # unpaired, the two runs' intervals overlap widely although the difference is exactly 5
    ea, eb = S.run_estimate(scores(rows), "a"), S.run_estimate(scores(rows), "b")
    assert ea.lo < eb.hi


def test_paired_difference_uses_only_common_problems_and_flags_unresolved():
    rows = [("a", 0, "s", "p1", 100.0), ("a", 0, "s", "p2", 0.0), ("a", 0, "s", "extra", 100.0),
            ("b", 0, "s", "p1", 0.0), ("b", 0, "s", "p2", 100.0)]
    d = S.paired_difference(scores(rows), "a", "b")
    assert d.n_problems == 2 and d.mean == 0.0
    assert d.lo == -100.0 and d.hi == 100.0 and not d.excludes_zero


@pytest.mark.parametrize("x, y, expected", [([1, 3], [2, 2], 0.5), ([3, 3], [1, 3], 0.75), ([5, 6], [1, 2], 1.0)])
def test_probability_of_improvement_is_mann_whitney_over_seed_pairs(x, y, expected):
    rows = [("x", s, "s", "p", float(v)) for s, v in enumerate(x)] + [("y", s, "s", "p", float(v))
                                                                     for s, v in enumerate(y)]
    poi = S.probability_of_improvement(scores(rows), "x", "y")
    assert poi.mean == pytest.approx(expected)
    assert poi.lo <= poi.mean <= poi.hi


def test_probability_of_improvement_averages_over_suites():
    rows = [("x", 0, "A", "p", 1.0), ("y", 0, "A", "p", 0.0), ("x", 0, "B", "p", 0.0), ("y", 0, "B", "p", 1.0)]
    assert S.probability_of_improvement(scores(rows), "x", "y").mean == pytest.approx(0.5)


def test_tables_and_spread():
    rows = [(r, s, su, f"p{i}", v + (10 if r == "a" else 0) + s)
            for r in ("a", "b") for s in (0, 1, 2) for su in ("A", "B") for i, v in enumerate([0.0, 50.0, 100.0])]
    df = scores(rows)
    est = S.estimates_table(df)
    avg = est[(est.run == "a") & (est.suite == "Avg.")].iloc[0]
    assert avg["mean"] == pytest.approx(61.0) and avg.n_seeds == 3 and avg.n_problems == 6
    diff = S.differences_table(df, "b").iloc[0]
    assert diff["diff"] == pytest.approx(10.0) and diff.resolved and diff.poi == 1.0  # every seed of a beats b's
    assert S.seed_spread(df, "a") == pytest.approx(1.0)


def test_missing_problem_for_a_seed_is_refused():
    rows = [("a", 0, "s", "p1", 1.0), ("a", 0, "s", "p2", 1.0), ("a", 1, "s", "p1", 1.0)]
    with pytest.raises(ValueError, match="lacks scores"):
        S.run_estimate(scores(rows), "a")


def test_same_input_same_interval():
    rng = np.random.default_rng(1)
    rows = [("a", s, "s", f"p{i}", float(v)) for s in range(3) for i, v in enumerate(rng.uniform(0, 100, 20))]
    assert S.run_estimate(scores(rows), "a") == S.run_estimate(scores(rows), "a")


def test_seed_band():
    frame = pd.DataFrame({"run": "a", "step": [1, 1, 2], "seed": [0, 1, 0], "entropy": [1.0, 3.0, 2.0]})
    band = S.seed_band(frame, "step", "entropy").set_index("step")
    assert band.loc[1, "mean"] == 2.0 and band.loc[1, "lo"] == pytest.approx(2 - np.sqrt(2))
    assert band.loc[2, "n_seeds"] == 1 and np.isnan(band.loc[2, "lo"])
