import math

import numpy as np
import pytest

from sent.metrics import avg_at_k, entropy_summary, pass_at_k, pass_at_k_any


def test_pass_at_k_closed_form():
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)  # k=1: c/n
    assert pass_at_k(16, 3, 8) == pytest.approx(1 - math.comb(13, 8) / math.comb(16, 8))  # 1 - 1287/12870 = 0.9
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 4, 2) == 1.0  # n - c = 1 < k = 2
    assert pass_at_k(200, 100, 100) == 1.0 - math.comb(100, 100) / math.comb(200, 100)  # product form, no overflow


def test_pass_at_k_vectorised():
    out = pass_at_k(np.array([5, 5, 4]), np.array([2, 4, 0]), 2)
    np.testing.assert_allclose(out, [0.7, 1.0, 0.0])


def test_pass_at_k_bad_input():
    with pytest.raises(ValueError, match="k=6"):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="c"):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError, match="k must"):
        pass_at_k(5, 1, 0)
    with pytest.raises(ValueError, match="n must"):
        pass_at_k(0.5, 0, 1)
    with pytest.raises(ValueError, match="same shape"):
        pass_at_k(np.array([5, 5]), np.array([1, 1, 1]), 1)


def test_any_and_avg_at_k():
    correct = np.array([[False, True, False, False],
                        [False, False, False, True],
                        [True, True, False, False]])
    # first 2: rows any = 1, 0, 1 -> 2/3 ; mean acc = 0.5, 0, 1 -> 0.5
    assert pass_at_k_any(correct, 2) == pytest.approx(2 / 3)
    assert avg_at_k(correct, 2) == pytest.approx(0.5)
    np.testing.assert_allclose(avg_at_k(correct, 4, reduce=False), [0.25, 0.25, 0.5])
    assert pass_at_k_any(correct, 4) == 1.0
    with pytest.raises(ValueError, match="k=5"):
        avg_at_k(correct, 5)
    with pytest.raises(ValueError, match="correct"):
        pass_at_k_any(np.array([1, 0]), 1)  # 1-D
    with pytest.raises(ValueError, match="correct"):
        avg_at_k(np.array([[0.5, 1.0]]), 1)  # not booleans


def test_entropy_summary():
    s = entropy_summary([0.0, 1.0, 2.0, 3.0, 4.0, float("nan")])
    # numpy linear percentiles of 0..4: p20 = 0.8, median = 2, p80 = 3.2
    assert s == pytest.approx({"n": 5, "mean": 2.0, "median": 2.0, "p20": 0.8, "p80": 3.2})
    assert entropy_summary([])["n"] == 0
