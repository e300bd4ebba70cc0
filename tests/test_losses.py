"""sent.losses: TRL parity of grpo, reductions to grpo, selection counts, sent / sent_release gates, errors."""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from sent.aggregation import aggregate_loss
from sent.gating import gate_metrics, gate_sums
from sent.losses import LOSSES, LossInputs, LossOutput, LossSettings, get_loss
from tests._hand import ADV, ENTROPY, F_, LOGP, MASK, T_  # noqa: F401  (the shared 2x6 example)


def _inputs(on_policy=False, seed=0, B=4, T=7, ref=True, adv_2d=False):
    """Random micro-batch; returns (inputs, logp leaf). Off-policy log-ratios up to ±0.5 so clipping bites."""
    g = torch.Generator().manual_seed(seed)
    logp = (-3 * torch.rand(B, T, generator=g)).requires_grad_()
    old = logp.detach() if on_policy else logp.detach() + (torch.rand(B, T, generator=g) - 0.5)
    ref_logp = logp.detach() + 0.3 * torch.randn(B, T, generator=g) if ref else None
    mask = torch.rand(B, T, generator=g) < 0.8
    mask[:, 0] = True
    adv = torch.randn(B, T, generator=g) if adv_2d else torch.randn(B, generator=g)
    return LossInputs(logp, old, ref_logp, torch.rand(B, T, generator=g), adv, mask), logp


def _run(name, x, **settings):
    """per_token_loss and d(sum)/d logp of one method."""
    x.logp.grad = None
    out = get_loss(name)(x, LossSettings(**settings))
    out.per_token_loss.sum().backward()
    return out, x.logp.grad.clone()


# ---------------------------------------------------------------------------------------------------------------------
# grpo == TRL 1.16


def _trl_literal(logp, old, ref, adv, mask, beta, eps_low, eps_high, bias_correction, loss_type, max_len):
    """TRL 1.16 GRPOTrainer._compute_loss, token-level IS, written out from its source (no accumulation)."""
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    coef_1 = torch.exp(logp - old)
    per_token_kl = torch.exp(ref - logp) - (ref - logp) - 1
    if bias_correction:
        per_token_kl = per_token_kl * coef_1
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    m = mask.float()
    if loss_type == "grpo":
        return ((per_token_loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * m).sum() / m.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token_loss * m).sum() / (per_token_loss.size(0) * max_len)
    return (per_token_loss * m).sum() / m.sum().clamp(min=1.0)  # dapo, one process, no accumulation


def _aggregate(per_token_loss, mask, loss_type, max_len):
    m = mask.float()
    if loss_type == "grpo":
        return (per_token_loss.sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return per_token_loss.sum() / (per_token_loss.size(0) * max_len)
    return per_token_loss.sum() / m.sum().clamp(min=1.0)  # bnpo, dapo


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize(("beta", "bias_correction", "adv_2d"), [(0.0, False, False), (0.04, False, True), (0.04, True, False)])
def test_grpo_matches_literal_trl_formula(loss_type, beta, bias_correction, adv_2d):
    x, logp = _inputs(adv_2d=adv_2d)
    settings = LossSettings(beta=beta, kl_bias_correction=bias_correction, epsilon_low=0.2, epsilon_high=0.28)
    ours = _aggregate(get_loss("grpo")(x, settings).per_token_loss, x.mask, loss_type, 7)
    (g_ours,) = torch.autograd.grad(ours, logp)
    theirs = _trl_literal(logp, x.old_logp, x.ref_logp, x.advantages, x.mask, beta, 0.2, 0.28, bias_correction, loss_type, 7)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(g_ours, g_theirs, atol=1e-7)


class _OneProcess:
    num_processes = 1

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_grpo_matches_installed_trl_compute_loss(loss_type):
    """Call the real GRPOTrainer._compute_loss on a stub trainer: fails loudly if TRL's loss changes."""
    from trl import GRPOTrainer

    x, logp = _inputs(seed=3)
    B, T = x.mask.shape
    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, x.entropy, None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=0.04,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.2, use_vllm=False, vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1, _entropy_bonus_enabled=False,
        aux_loss_enabled=False, accelerator=_OneProcess(), _metrics={"train": defaultdict(list)}, max_completion_length=T,
    )
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": x.mask.long(),
              "advantages": x.advantages, "old_per_token_logps": x.old_logp, "ref_per_token_logps": x.ref_logp,
              "num_items_in_batch": x.mask.sum()}
    theirs = GRPOTrainer._compute_loss(stub, None, inputs)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    out = get_loss("grpo")(x, LossSettings(beta=0.04))
    ours = _aggregate(out.per_token_loss, x.mask, loss_type, T)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(g_ours, g_theirs, atol=1e-7)
    assert out.metrics["kl/ref"] == pytest.approx(stub._metrics["train"]["kl"][0], rel=1e-5)
    assert out.metrics["clip_ratio/region_mean"] == pytest.approx(stub._metrics["train"]["clip_ratio/region_mean"][0])


# ---------------------------------------------------------------------------------------------------------------------
# every method reduces to grpo with its knobs off


@pytest.mark.parametrize(
    ("name", "settings", "on_policy"),
    [
        ("entropy_bonus", {"entropy_coef": 0.0}, False),
        ("entropy_adv", {"entropy_adv_alpha": 0.0}, False),
        ("clip_cov", {"clip_cov_lb": 100.0, "clip_cov_ub": 200.0}, False),  # no covariance in the window
        ("high_entropy", {"high_entropy_ratio": 1.0}, False),
        ("sent", {"beta_low": 0.0, "beta_high": 0.0}, False),
        ("sent", {"use_low_entropy_kl": False}, False),
        ("kl_cov", {}, True),  # unclipped and |log-ratio| = 0: equal on-policy only (verl)
        ("sent_release", {}, True),
    ],
)
def test_methods_reduce_to_grpo(name, settings, on_policy):
    x, _ = _inputs(on_policy=on_policy, seed=1)
    common = {"beta": 0.04}
    base, g_base = _run("grpo", x, **common)
    out, g = _run(name, x, **common, **settings)
    assert torch.equal(out.per_token_loss, base.per_token_loss) if name != "sent_release" else torch.allclose(
        out.per_token_loss, base.per_token_loss, atol=1e-7)  # sent_release: verl's clamped k3, same value here
    assert torch.allclose(g, g_base, atol=1e-7)


def test_per_token_loss_is_zero_outside_mask():
    x, _ = _inputs(seed=2)
    for name in LOSSES:
        out = get_loss(name)(x, LossSettings(beta=0.04))
        assert isinstance(out, LossOutput)
        assert (out.per_token_loss[~x.mask] == 0).all(), name
        assert all(isinstance(v, float) for v in out.metrics.values()), name


# ---------------------------------------------------------------------------------------------------------------------
# selection counts on the hand-made 2x6 batch (N = 10 valid tokens)


def _fixed(old_shift=0.0, adv=ADV, logp=LOGP):
    lp = logp.clone().requires_grad_()
    old = lp.detach() - old_shift
    return LossInputs(lp, old, lp.detach() + 0.1, ENTROPY, adv, MASK), lp


def test_kl_cov_penalises_the_top_k_covariance_tokens():
    # Cov over valid tokens: row 0 = [1, 0, -1, -2, -3], row 1 = -1 each. ratio 0.2 -> k = 2: (0,0), (0,1).
    x, lp = _fixed(old_shift=0.1)  # |log-ratio| = 0.1 everywhere
    out = get_loss("kl_cov")(x, LossSettings(kl_cov_ratio=0.2, kl_cov_coef=1.0))
    unclipped = -ADV[:, None] * torch.exp(torch.tensor(0.1)) * MASK
    penalty = (out.per_token_loss - unclipped).detach()
    expected = torch.zeros(2, 6)
    expected[0, 0] = expected[0, 1] = 0.1
    assert torch.allclose(penalty, expected, atol=1e-6)
    assert out.metrics["kl_cov/share"] == pytest.approx(0.2)


def test_clip_cov_zeroes_exactly_clip_num_random_candidates():
    # A = [3, -3], logp rows -1 / -3: Cov = 3 on every valid token, inside (1, 5): all 10 are candidates.
    logp = torch.tensor([[-1.0] * 6, [-3.0] * 6])
    x, _ = _fixed(adv=torch.tensor([3.0, -3.0]), logp=logp)
    picks = []
    for seed in (0, 0, 1):
        x.generator = torch.Generator().manual_seed(seed)
        out = get_loss("clip_cov")(x, LossSettings(clip_cov_ratio=0.2))  # clip_num = int(10 * 0.2) = 2
        zeroed = (out.per_token_loss == 0) & MASK
        assert zeroed.sum() == 2 and out.metrics["clip_cov/share"] == pytest.approx(0.2)
        picks.append(zeroed)
    assert torch.equal(picks[0], picks[1])  # same generator seed, same picks


def test_high_entropy_keeps_ceil_of_ratio_tokens():
    x, _ = _fixed()
    # ceil(10 * 0.2) = 2: entropies 0.90 (0,1) and 0.80 (1,3); ceil(10 * 0.25) = 3 adds 0.70 (1,4).
    for ratio, expected in ((0.2, [[0, 1], [1, 3]]), (0.25, [[0, 1], [1, 3], [1, 4]])):
        out = get_loss("high_entropy")(x, LossSettings(high_entropy_ratio=ratio))
        assert (out.per_token_loss != 0).nonzero().tolist() == expected


def test_high_entropy_count_is_wang_int_plus_0_9999_not_math_ceil():
    # N = 100, ratio 0.07: 100 * 0.07 = 7.000000000000001 -> int(N*ratio + 0.9999) = 7 (Wang); math.ceil gives 8.
    mask = torch.ones(1, 100, dtype=torch.bool)
    entropy = torch.arange(100.0).unsqueeze(0) / 100  # distinct: the top 7 are columns 93..99
    x = LossInputs(torch.zeros(1, 100, requires_grad=True), torch.zeros(1, 100), None, entropy, torch.ones(1), mask)
    out = get_loss("high_entropy")(x, LossSettings(high_entropy_ratio=0.07))
    assert (out.per_token_loss != 0).nonzero()[:, 1].tolist() == list(range(93, 100))


def test_high_entropy_policy_term_is_the_mean_over_selected_tokens():
    # ratio 0.25 on the 2x6 batch: S = (0,1) [A = +1], (1,3), (1,4) [A = -1]; on-policy pg_t = -A_t:
    # mean over S = (-1 + 1 + 1) / 3 = 1/3 (Wang: token-mean with response_mask * entropy_top_mask).
    # The old normalisation over all N = 10 valid tokens gave 1/10. KL: ref = logp + 0.1 on every token, so
    # k3 = e^0.1 - 1.1 everywhere and its token-mean over all 10 valid tokens is that value.
    x, _ = _fixed()
    for beta in (0.0, 0.5):
        out = get_loss("high_entropy")(x, LossSettings(high_entropy_ratio=0.25, beta=beta))
        bnpo = out.per_token_loss.sum() / MASK.sum()  # what the trainer does for loss_type bnpo
        k3 = torch.exp(torch.tensor(0.1)) - 1.1
        assert bnpo.item() == pytest.approx(1 / 3 + beta * k3.item(), rel=1e-6)
        assert out.metrics["share/high_entropy"] == pytest.approx(0.3)


def _wang_literal(logp, old, ref, entropy, adv, mask, ratio, beta, eps):
    """Beyond-the-80-20-Rule-RLVR @6f5dda6 (dp_actor + core_algos), written out: token-mean, one micro-batch.

    Their dual-clip (clip_ratio_c) and logp clamp are left out, as in TRL's GRPO.
    """
    flat_mask = mask.flatten().bool()
    response_entropy = entropy.flatten()[flat_mask]
    top_k = max(1, int(len(response_entropy) * ratio + 0.9999))
    _, topk_idx = torch.topk(response_entropy, k=top_k)
    flat_out = torch.zeros_like(entropy.flatten(), dtype=torch.long)
    flat_out[flat_mask.nonzero(as_tuple=False).squeeze(1)[topk_idx]] = 1
    entropy_top_mask = flat_out.view_as(entropy)
    adv = adv.unsqueeze(1)
    ratio_t = torch.exp(logp - old)
    pg = torch.maximum(-adv * ratio_t, -adv * torch.clamp(ratio_t, 1 - eps, 1 + eps))
    m = mask.long() * entropy_top_mask
    pg_loss = (pg * m).sum() / (m.sum() + 1e-8)  # verl_F.masked_mean
    kld = torch.exp(ref - logp) - (ref - logp) - 1
    return pg_loss + beta * (kld * mask).sum() / (mask.sum() + 1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_high_entropy_matches_wang_token_mean_value_and_gradient(seed):
    x, logp = _inputs(seed=seed, B=4, T=9)
    out = get_loss("high_entropy")(x, LossSettings(high_entropy_ratio=0.2, beta=0.04))
    ours = out.per_token_loss.sum() / x.mask.sum()  # trainer, loss_type bnpo
    (g_ours,) = torch.autograd.grad(ours, logp)
    theirs = _wang_literal(logp, x.old_logp, x.ref_logp, x.entropy, x.advantages, x.mask, 0.2, 0.04, 0.2)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(g_ours, g_theirs, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------------
# sent and sent_release


def test_sent_adds_beta_t_times_k3():
    # Gates as tests/test_gating.py: T_low = [[1,0,1,1,1,0],[1,1,1,0,1,0]], Cov > -1 on (0,0) and (0,2).
    x, _ = _fixed(old_shift=0.05)
    s = LossSettings(high_cov_ratio=None, high_cov_threshold=-1.0, beta_low=0.05, beta_high=0.2)
    out = get_loss("sent")(x, s)
    expected_beta = torch.tensor([[0.2, 0.0, 0.2, 0.05, 0.05, 0.0],
                                  [0.05, 0.05, 0.05, 0.0, 0.05, 0.0]])
    assert torch.allclose(out.gates.beta, expected_beta)
    diff = x.ref_logp - x.logp.detach()
    k3 = torch.exp(diff) - diff - 1
    grpo = get_loss("grpo")(x, LossSettings()).per_token_loss
    assert torch.allclose(out.per_token_loss, grpo + expected_beta * k3 * MASK, atol=1e-7)
    assert out.metrics["share/low"] == pytest.approx(0.8) and out.metrics["share/high_cov"] == pytest.approx(0.2)


def test_sent_without_high_cov_tier_uses_beta_low_on_all_low_tokens():
    x, _ = _fixed()
    out = get_loss("sent")(x, LossSettings(high_cov_ratio=None, high_cov_threshold=-1.0, use_high_cov_tier=False))
    low = out.gates.low_entropy
    assert torch.allclose(out.gates.beta[low], torch.full((8,), 0.05)) and (out.gates.beta[~low] == 0).all()


def test_sent_needs_ref_logp_when_the_token_kl_is_on():
    x, _ = _fixed()
    x.ref_logp = None
    with pytest.raises(ValueError, match="ref_logp"):
        get_loss("sent")(x, LossSettings())
    with pytest.raises(ValueError, match="ref_logp"):
        get_loss("grpo")(x, LossSettings(beta=0.01))
    get_loss("sent")(x, LossSettings(use_low_entropy_kl=False))  # no token KL, no reference needed


def test_sent_release_coefficients_and_int_mask_bug():
    x, _ = _fixed(old_shift=0.1)
    # Fixed indexing: Cov over T_low = row 0 [1.125, ., -0.875, -1.875, -2.875], row 1 -1.125 x4.
    # release_kl_cov_ratio 0.25 -> k = int(8 * 0.25) = 2: top (0,0), (0,2) get 0.1*2.0; bottom (0,4), (0,3) get 0.1*0.5.
    fixed = get_loss("sent_release")(x, LossSettings(release_kl_cov_ratio=0.25))
    expected = torch.zeros(2, 6)
    expected[0, 0] = expected[0, 2] = 0.2
    expected[0, 3] = expected[0, 4] = 0.05
    assert torch.allclose(fixed.gates.beta, expected)
    assert torch.allclose(fixed.per_token_loss, (-ADV[:, None] * torch.exp(torch.tensor(0.1)) + expected * 0.1) * MASK)
    # Int-mask bug: valid rank i reads row mask.flat[i // 6] = 1, column i % 6 -> row 1's values, and
    # (1,0) (rank 5) reads the padded column 5 (A = 0, logp = -100): it is the one outlier (most negative
    # Cov); every other low token ties. top-2 by flat index: (0,0), (0,2); bottom-2: (1,0) then (0,0),
    # and bottom overwrites top as in the release.
    buggy = get_loss("sent_release")(x, LossSettings(release_kl_cov_ratio=0.25, release_int_mask_indexing=True))
    expected_bug = torch.zeros(2, 6)
    expected_bug[0, 0] = expected_bug[1, 0] = 0.05
    expected_bug[0, 2] = 0.2
    assert torch.allclose(buggy.gates.beta, expected_bug)
    assert not torch.equal(buggy.gates.beta, fixed.gates.beta)
    with pytest.raises(ValueError, match="release_int_mask_indexing"):
        x1, _ = _fixed()
        x1 = LossInputs(x1.logp[:1], x1.old_logp[:1], None, ENTROPY[:1], ADV[:1], MASK[:1])
        get_loss("sent_release")(x1, LossSettings(release_int_mask_indexing=True))


# ---------------------------------------------------------------------------------------------------------------------
# errors


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: clip_cov, entropy_adv, entropy_bonus, grpo, high_entropy, kl_cov, sent, sent_release"):
        get_loss("ppo")


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"epsilon_low": 1.5}, "epsilon_low"),
        ({"beta": -0.1}, "beta"),
        ({"low_entropy_ratio": 0.0}, "low_entropy_ratio"),
        ({"beta_low": 0.3, "beta_high": 0.2}, "beta_high"),
        ({"high_cov_ratio": 0.1, "high_cov_threshold": 0.0}, "high_cov_ratio"),
        ({"high_cov_ratio": None}, "high_cov_ratio"),
        ({"cov_center": "batch"}, "cov_center"),
        ({"entropy_adv_kappa": 0.0}, "entropy_adv_kappa"),
        ({"clip_cov_lb": 5.0, "clip_cov_ub": 1.0}, "clip_cov_lb"),
        ({"kl_cov_ratio": 2.0}, "kl_cov_ratio"),
        ({"release_kl_coef": float("nan")}, "release_kl_coef"),
    ],
)
def test_bad_settings_name_the_field(settings, argument):
    with pytest.raises(ValueError, match=argument):
        LossSettings(**settings)


def test_bad_inputs_name_the_argument():
    x, _ = _inputs()
    with pytest.raises(ValueError, match="mask"):
        get_loss("grpo")(LossInputs(x.logp, x.old_logp, None, x.entropy, x.advantages, x.mask.long()), LossSettings())
    with pytest.raises(ValueError, match="advantages"):
        get_loss("grpo")(LossInputs(x.logp, x.old_logp, None, x.entropy, torch.ones(3), x.mask), LossSettings())
    with pytest.raises(ValueError, match="old_logp"):
        get_loss("sent")(LossInputs(x.logp, x.old_logp[:, :3], None, x.entropy, x.advantages, x.mask), LossSettings())
    empty = torch.zeros(0, 5)
    with pytest.raises(ValueError, match="mask"):
        get_loss("grpo")(LossInputs(empty, empty, None, empty, torch.zeros(0), empty.bool()), LossSettings())


def test_aggregate_loss_normalisers():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    kw = dict(training=True, grad_accum=2, max_completion_length=4)
    # grpo: mean(2, 4) = 3, / 2 accum = 1.5
    assert aggregate_loss(loss, mask, "grpo", **kw)[0].item() == pytest.approx(1.5)
    # bnpo: 10 / 4 tokens = 2.5, / 2 = 1.25
    assert aggregate_loss(loss, mask, "bnpo", **kw)[0].item() == pytest.approx(1.25)
    # dr_grpo: 10 / (2 * 4) = 1.25, / 2 = 0.625
    assert aggregate_loss(loss, mask, "dr_grpo", **kw)[0].item() == pytest.approx(0.625)
    # dapo: 10 / (num_items 8 / 1 proc * accum 2 / steps_per_generation 4) = 10 / 4 = 2.5
    out = aggregate_loss(loss, mask, "dapo", num_items_in_batch=torch.tensor(8.0), steps_per_generation=4, **kw)
    assert out[0].item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="loss_type"):
        aggregate_loss(loss, mask, "cispo", **kw)


@pytest.mark.parametrize("name", ["sent", "sent_release"])
def test_gate_metrics_of_a_loss_are_sent_gating_gate_metrics(name):
    x, _ = _inputs(B=4, T=9)
    out = get_loss(name)(x, LossSettings(release_kl_cov_ratio=0.25))
    expected = {k: float(v) for k, v in gate_metrics(*gate_sums(out.gates, x.entropy, x.mask)).items()}
    assert {k: out.metrics[k] for k in expected} == expected
