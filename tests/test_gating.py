"""sent.gating on hand-made 2x6 tensors; expected masks written out literally."""

import pytest
import torch

from sent.gating import (
    GATE_SUMS,
    TokenGates,
    compute_gates,
    gate_metrics,
    gate_sums,
    low_entropy_mask,
    token_beta,
    token_covariance,
    topk_mask,
)
from tests._hand import ADV, ENTROPY, F_, LOGP, MASK, T_  # noqa: F401  (the shared 2x6 example)


def _mask(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_low_entropy_mask_bottom_80_percent():
    # N = 10 valid tokens, k = int(10 * 0.8) = 8: every valid token but the two highest (0.90 and 0.80).
    expected = _mask([[1, 0, 1, 1, 1, 0],
                      [1, 1, 1, 0, 1, 0]])
    assert torch.equal(low_entropy_mask(ENTROPY, MASK, 0.8), expected)


def test_low_entropy_mask_half_and_min_one():
    # k = 5: 0.05, 0.10, 0.20, 0.30, 0.40.
    expected = _mask([[1, 0, 1, 0, 1, 0],
                      [1, 0, 1, 0, 0, 0]])
    assert torch.equal(low_entropy_mask(ENTROPY, MASK, 0.5), expected)
    # k = max(1, int(10 * 0.01)) = 1: only the 0.05 token.
    assert low_entropy_mask(ENTROPY, MASK, 0.01).nonzero().tolist() == [[1, 2]]


def test_low_entropy_mask_eligible_restricts_candidates():
    # (1, 2) is not eligible: N = 9 eligible valid tokens, k = int(9 * 0.5) = 4 -> 0.10, 0.20, 0.30, 0.40.
    eligible = torch.ones(2, 6, dtype=torch.bool)
    eligible[1, 2] = False
    expected = _mask([[1, 0, 1, 0, 1, 0],
                      [1, 0, 0, 0, 0, 0]])
    assert torch.equal(low_entropy_mask(ENTROPY, MASK, 0.5, eligible=eligible), expected)
    # nothing eligible -> empty set, not an error
    assert not low_entropy_mask(ENTROPY, MASK, 0.5, eligible=torch.zeros(2, 6, dtype=torch.bool)).any()


def test_ties_go_to_smaller_flat_index():
    # All entropies equal, first row starts with a padded position: the k = 5 earliest VALID tokens in
    # row-major order win, so the whole valid part of row 0 and the first valid token of row 1.
    mask = _mask([[0, 1, 1, 1, 1, 1],
                  [1, 1, 1, 1, 1, 0]])
    entropy = torch.full((2, 6), 0.5)
    expected = _mask([[0, 1, 1, 1, 1, 1],
                      [0, 0, 0, 0, 0, 0]])
    assert torch.equal(low_entropy_mask(entropy, mask, 0.5), expected)
    # largest=True breaks ties the same way
    assert topk_mask(entropy, mask, 2, largest=True).nonzero().tolist() == [[0, 1], [0, 2]]
    # partial tie: the strictly lower value is always in, then the earliest tied token
    entropy[1, 4] = 0.1
    assert topk_mask(entropy, mask, 2, largest=False).nonzero().tolist() == [[0, 1], [1, 4]]


def test_scope_is_the_tensor_passed():
    # Over the whole 2x6 tensor k = 5: 0.05, 0.10, 0.20, 0.30, 0.40. Row by row k = int(5 * 0.5) = 2 each:
    # row 0 keeps 0.10, 0.20 (not 0.30) and row 1 keeps 0.05, 0.40. The caller's tensor sets the scope.
    batch = low_entropy_mask(ENTROPY, MASK, 0.5)
    per_row = torch.cat([low_entropy_mask(ENTROPY[i:i + 1], MASK[i:i + 1], 0.5) for i in range(2)])
    assert per_row.sum() == 4 and batch.sum() == 5
    assert not torch.equal(batch, per_row)


def test_token_covariance_over_valid_and_subset():
    # Over all 10 valid tokens: mean A = 0, mean logp = -2.
    # row 0: 1 * (logp + 2) = [1, 0, -1, -2, -3]; row 1: -1 * (-1 + 2) = -1; padding 0.
    expected = torch.tensor([[1.0, 0.0, -1.0, -2.0, -3.0, 0.0],
                             [-1.0, -1.0, -1.0, -1.0, -1.0, 0.0]])
    assert torch.allclose(token_covariance(LOGP, ADV, MASK), expected)
    # (B, T) advantages give the same result
    assert torch.allclose(token_covariance(LOGP, ADV[:, None].expand(2, 6), MASK), expected)
    # Subset {(0,0), (0,1), (1,0)}: mean A = 1/3, mean logp = -4/3 -> 2/9, -4/9, -4/9; 0 elsewhere.
    subset = _mask([[1, 1, 0, 0, 0, 0],
                    [1, 0, 0, 0, 0, 0]])
    cov = token_covariance(LOGP, ADV, MASK, subset=subset)
    assert torch.allclose(cov[subset], torch.tensor([2 / 9, -4 / 9, -4 / 9]))
    assert (cov[~subset] == 0).all()


def test_token_covariance_detaches_logp():
    logp = LOGP.clone().requires_grad_()
    assert not token_covariance(logp, ADV, MASK).requires_grad


# Gates with low_entropy_ratio 0.8: T_low = [[1,0,1,1,1,0],[1,1,1,0,1,0]] (8 tokens).
# Centred over T_low: mean A = 0, mean logp = -17/8 -> Cov row 0 = [1.125, ., -0.875, -1.875, -2.875],
# row 1 = -1.125 on its four low tokens.
LOW_80 = _mask([[1, 0, 1, 1, 1, 0],
                [1, 1, 1, 0, 1, 0]])


def test_compute_gates_threshold_and_beta():
    gates = compute_gates(ENTROPY, LOGP, ADV, MASK, low_entropy_ratio=0.8, beta_low=0.05, beta_high=0.2,
                          high_cov_threshold=-1.0)
    assert isinstance(gates, TokenGates)
    assert torch.equal(gates.low_entropy, LOW_80)
    # Cov > -1.0 inside T_low: 1.125 at (0,0) and -0.875 at (0,2)
    expected_high = _mask([[1, 0, 1, 0, 0, 0],
                           [0, 0, 0, 0, 0, 0]])
    assert torch.equal(gates.high_cov, expected_high)
    assert torch.allclose(gates.covariance[0, :5], torch.tensor([1.125, 0.0, -0.875, -1.875, -2.875]))
    expected_beta = torch.tensor([[0.2, 0.0, 0.2, 0.05, 0.05, 0.0],
                                  [0.05, 0.05, 0.05, 0.0, 0.05, 0.0]])
    assert torch.allclose(gates.beta, expected_beta)
    assert gates.beta.dtype == torch.float32


def test_compute_gates_centre_valid_changes_the_set():
    # Centred over all valid tokens: Cov(0,2) = -1 is not > -1, so only (0,0) is high-covariance.
    gates = compute_gates(ENTROPY, LOGP, ADV, MASK, low_entropy_ratio=0.8, beta_low=0.05, beta_high=0.2,
                          high_cov_threshold=-1.0, center="valid")
    assert gates.high_cov.nonzero().tolist() == [[0, 0]]
    # covariance is reported on T_low only
    assert (gates.covariance[~LOW_80] == 0).all()


def test_compute_gates_top_fraction():
    # k = int(8 * 0.25) = 2 largest Cov in T_low: (0,0) 1.125 and (0,2) -0.875
    beta = token_beta(ENTROPY, LOGP, ADV, MASK, low_entropy_ratio=0.8, beta_low=0.05, beta_high=0.2,
                      high_cov_ratio=0.25)
    assert beta[0, 0] == pytest.approx(0.2) and beta[0, 2] == pytest.approx(0.2)
    assert (beta > 0.1).sum() == 2
    # a tiny ratio still selects one token
    gates = compute_gates(ENTROPY, LOGP, ADV, MASK, high_cov_ratio=1e-6)
    assert gates.high_cov.nonzero().tolist() == [[0, 0]]


def test_compute_gates_runs_without_grad():
    logp = LOGP.clone().requires_grad_()
    gates = compute_gates(ENTROPY, logp, ADV, MASK, high_cov_ratio=0.5)
    assert not gates.beta.requires_grad and not gates.covariance.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"low_entropy_ratio": 0.0}, "low_entropy_ratio"),
        ({"low_entropy_ratio": 1.5}, "low_entropy_ratio"),
        ({"beta_low": 0.3, "beta_high": 0.2}, "beta_high"),
        ({"beta_low": -0.1}, "beta_low"),
        ({"high_cov_threshold": 0.0, "high_cov_ratio": 0.1}, "high_cov_threshold"),
        ({"high_cov_ratio": None}, "high_cov_threshold"),
        ({"high_cov_ratio": 2.0}, "high_cov_ratio"),
        ({"center": "batch"}, "center"),
    ],
)
def test_compute_gates_bad_settings(kwargs, argument):
    base = {"low_entropy_ratio": 0.8, "beta_low": 0.05, "beta_high": 0.2, "high_cov_ratio": 0.1}
    with pytest.raises(ValueError, match=argument):
        compute_gates(ENTROPY, LOGP, ADV, MASK, **{**base, **kwargs})


def test_bad_tensors_name_the_argument():
    with pytest.raises(ValueError, match="entropy"):
        low_entropy_mask(ENTROPY[:, :5], MASK)
    with pytest.raises(ValueError, match="logp"):
        compute_gates(ENTROPY, LOGP[:1], ADV, MASK, high_cov_ratio=0.1)
    with pytest.raises(ValueError, match="advantages"):
        token_covariance(LOGP, torch.ones(3), MASK)
    with pytest.raises(ValueError, match="mask"):
        low_entropy_mask(ENTROPY, MASK.long())
    with pytest.raises(ValueError, match="mask"):  # empty batch
        low_entropy_mask(torch.zeros(0, 6), torch.zeros(0, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):  # all-masked
        low_entropy_mask(ENTROPY, torch.zeros(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="ratio"):
        low_entropy_mask(ENTROPY, MASK, ratio=0.0)
    with pytest.raises(ValueError, match="NaN"):
        low_entropy_mask(torch.full((2, 6), float("nan")), MASK)


def _threshold_gates(**kw):
    return compute_gates(ENTROPY, LOGP, ADV, MASK, low_entropy_ratio=0.8, beta_low=0.05, beta_high=0.2,
                         high_cov_threshold=-1.0, **kw)


def test_gate_metrics_by_hand():
    gates = _threshold_gates()  # T_low = LOW_80 (8 tokens), T_high-cov = (0,0), (0,2); 10 valid tokens
    sums, cov_max = gate_sums(gates, ENTROPY, MASK)
    assert sums.shape == (len(GATE_SUMS),) and sums.dtype == torch.float32
    m = {k: float(v) for k, v in gate_metrics(sums, cov_max).items()}
    assert m["share/low"] == pytest.approx(0.8) and m["share/high_cov"] == pytest.approx(0.2)
    assert m["entropy/low"] == pytest.approx((0.10 + 0.30 + 0.50 + 0.20 + 0.40 + 0.60 + 0.05 + 0.70) / 8)
    assert m["entropy/high_cov"] == pytest.approx((0.10 + 0.30) / 2)
    assert m["beta/mean"] == pytest.approx((2 * 0.2 + 6 * 0.05) / 10)
    assert m["beta/mean_low"] == pytest.approx((2 * 0.2 + 6 * 0.05) / 8)
    cov = gates.covariance[LOW_80].double()
    assert m["cov/mean"] == pytest.approx(float(cov.mean()))
    assert m["cov/std"] == pytest.approx(float(cov.std(unbiased=False)), rel=1e-5)
    assert m["cov/max"] == pytest.approx(float(cov.max()))


def test_gate_sums_add_over_processes():
    """Sums of two halves (two ranks) give the metrics of the whole: what SENTTrainer's reduction relies on."""
    gates = _threshold_gates()
    whole = gate_metrics(*gate_sums(gates, ENTROPY, MASK))
    parts = [gate_sums(TokenGates(*(g[i:i + 1] for g in gates)), ENTROPY[i:i + 1], MASK[i:i + 1]) for i in (0, 1)]
    reduced = gate_metrics(parts[0][0] + parts[1][0], torch.maximum(parts[0][1], parts[1][1]))
    for key, value in whole.items():
        assert float(reduced[key]) == pytest.approx(float(value), rel=1e-6, abs=1e-7), key


def test_gate_metrics_on_empty_sets_nan_or_zero():
    gates = _threshold_gates(eligible=torch.zeros_like(MASK))  # nothing eligible: no T_low
    sums, cov_max = gate_sums(gates, ENTROPY, MASK)
    loss_view = gate_metrics(sums, cov_max)  # sent.losses: NaN means over empty sets
    log_view = gate_metrics(sums, cov_max, zero_on_empty=True)  # SENTTrainer's logs: 0
    assert float(loss_view["share/low"]) == 0.0 and torch.isnan(loss_view["entropy/low"])
    assert torch.isnan(loss_view["cov/std"]) and float(loss_view["cov/max"]) == -float("inf")
    assert all(float(v) == 0.0 for k, v in log_view.items() if k != "cov/max")
