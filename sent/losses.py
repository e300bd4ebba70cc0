"""Registry of per-token RL objectives: GRPO and every entropy method the SENT paper compares.

One pure function per method, registered by name (verl ``@register_policy_loss`` style)::

    loss_fn = get_loss("sent")
    out = loss_fn(LossInputs(logp, old_logp, ref_logp, entropy, advantages, mask), LossSettings())
    out.per_token_loss  # (B, T), 0 outside mask; the trainer aggregates it per TRL's loss_type

``LossSettings`` (declared in ``sent.loss_settings``: help, default and range check of every knob) is re-exported
here. Every function returns the per-token loss BEFORE aggregation, so one aggregation rule (TRL's ``loss_type``:
grpo / bnpo / dr_grpo / dapo, ``sent.aggregation.aggregate_loss``) serves all methods. Every method adds TRL's
reference KL ``beta * k3`` on all valid tokens when ``beta > 0`` (``sent_release`` uses verl's clamped k3, as the
released code did). Gate metrics (``entropy/low``, ``share/*``, ``cov/*``, ...) come from ``sent.gating.gate_metrics``. With its own knobs off, each method gives the same per-token loss and gradient as
``grpo`` (``kl_cov`` and ``sent_release`` are unclipped, as in verl, so only on-policy).

| name | paper column | source |
|---|---|---|
| grpo | GRPO | TRL 1.16 ``GRPOTrainer._compute_loss`` |
| entropy_bonus | w/ En | entropy regularisation |
| entropy_adv | w/ Adv | Cheng et al. 2506.14758 (identity unconfirmed, reference/paper.md §4) |
| clip_cov, kl_cov | w/ Clip, w/ Cov | Cui et al. 2505.22617, verl ``core_algos.py`` |
| high_entropy | w/ High_En | Wang et al. 2506.01939 |
| sent | w/ SENT | paper formula (reference/paper.md §1.6, §1.8) |
| sent_release | (released code) | ``compute_policy_loss_low_entropy_kl_cov_v2`` (reference/paper.md §1.8) |

The paper's "w/ Mask" baseline is unidentified and has no entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from sent.gating import (
    TokenGates,
    compute_gates,
    gate_metrics,
    gate_sums,
    low_entropy_mask,
    token_covariance,
    topk_mask,
)
from sent.loss_settings import LossSettings


__all__ = ["LOSSES", "LossFn", "LossInputs", "LossOutput", "LossSettings", "get_loss", "register_loss"]


@dataclass
class LossInputs:
    """Tensors of one micro-batch. B sequences, T completion positions."""

    logp: Tensor  # (B, T) log pi_theta(o_t), differentiable
    old_logp: Tensor  # (B, T) log pi_old, detached (== logp.detach() when on-policy)
    ref_logp: Tensor | None  # (B, T) log pi_ref, detached; None when there is no reference model
    entropy: Tensor  # (B, T) token entropy of pi_theta (nats; may carry grad)
    advantages: Tensor  # (B,) or (B, T)
    mask: Tensor  # (B, T) bool, valid completion tokens
    eligible: Tensor | None = None  # (B, T) bool, tokens allowed into the low-entropy set (token_filter)
    generator: torch.Generator | None = None  # randomness for clip_cov


@dataclass
class LossOutput:
    per_token_loss: Tensor  # (B, T), 0 outside mask; the trainer aggregates it per TRL loss_type
    metrics: dict[str, float]  # detached scalars, e.g. "kl/ref", "kl/old", "clip_ratio/region_mean", ...
    gates: TokenGates | None = None  # low_entropy / high_cov / covariance / beta when the method computes them


LossFn = Callable[[LossInputs, LossSettings], LossOutput]
LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator: add a loss function to ``LOSSES`` under ``name``."""

    def decorator(fn: LossFn) -> LossFn:
        if name in LOSSES and LOSSES[name] is not fn:
            raise ValueError(f"loss {name!r} is already registered ({LOSSES[name].__name__})")
        LOSSES[name] = fn
        return fn

    return decorator


def get_loss(name: str) -> LossFn:
    """The loss function registered as ``name``; unknown names raise ValueError listing the valid ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


# ---------------------------------------------------------------------------------------------------------------------
# shared pieces


def _check_inputs(x: LossInputs) -> Tensor:
    """Validate shapes/dtypes; return the advantages as (B, 1) or (B, T) (TRL's broadcasting)."""
    mask = x.mask
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError("mask must be a bool (B, T) tensor; convert an int completion_mask with .bool()")
    if mask.numel() == 0:
        raise ValueError(f"mask is empty (shape {tuple(mask.shape)}); pass at least one sequence and one token")
    for name in ("logp", "old_logp", "ref_logp", "entropy", "eligible"):
        t = getattr(x, name)
        if t is not None and (not isinstance(t, Tensor) or t.shape != mask.shape):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must have the shape of mask {tuple(mask.shape)}, got {shape}")
    adv = x.advantages
    if adv.dim() == 1 and adv.shape[0] == mask.shape[0]:
        return adv.unsqueeze(1)
    if adv.shape == mask.shape:
        return adv
    raise ValueError(f"advantages must have shape (B,) = ({mask.shape[0]},) or (B, T) = {tuple(mask.shape)}, got {tuple(adv.shape)}")


def _clipped_surrogate(coef_1: Tensor, adv: Tensor, s: LossSettings) -> Tensor:
    """TRL: -min(r*A, clip(r, 1-eps_low, 1+eps_high)*A), (B, T)."""
    coef_2 = torch.clamp(coef_1, 1 - s.epsilon_low, 1 + s.epsilon_high)
    return -torch.min(coef_1 * adv, coef_2 * adv)


def _k3(x: LossInputs, s: LossSettings, coef_1: Tensor) -> Tensor:
    """TRL's per-token k3 = exp(ref - logp) - (ref - logp) - 1 (no clamp), times r if kl_bias_correction."""
    diff = x.ref_logp.detach() - x.logp
    kl = torch.exp(diff) - diff - 1
    return kl * coef_1 if s.kl_bias_correction else kl


def _need_ref(x: LossInputs, why: str) -> None:
    if x.ref_logp is None:
        raise ValueError(f"ref_logp is None but {why}; pass reference log-probs or switch the term off")


def _mean(values: Tensor, where: Tensor) -> Tensor:
    """Masked mean as a float32 0-d tensor (NaN when ``where`` is empty)."""
    v = values.detach().float()
    return torch.where(where, v, 0.0).sum() / where.sum()


def _finish(
    x: LossInputs,
    s: LossSettings,
    policy: Tensor,
    coef_1: Tensor,
    adv: Tensor,
    *,
    clipped: bool = True,
    add_ref_kl: bool = True,
    kl: Tensor | None = None,
    extra: dict[str, Tensor] | None = None,
    gates: TokenGates | None = None,
) -> LossOutput:
    """Add ``beta * k3`` (TRL order: after the policy term), zero the padding, and collect metrics in one sync.

    ``add_ref_kl=False``: the caller already added its reference KL (``kl``, reused for the metric).
    """
    mask = x.mask
    if add_ref_kl and s.beta > 0.0:
        _need_ref(x, f"beta = {s.beta} > 0")
        kl = _k3(x, s, coef_1) if kl is None else kl
        policy = policy + s.beta * kl
    per_token_loss = policy * mask  # (B, T); TRL multiplies by the mask the same way when aggregating
    stats: dict[str, Tensor] = {
        "kl/old": _mean((x.logp.detach() - x.old_logp).abs(), mask),
        "entropy/all": _mean(x.entropy, mask),
    }
    if x.ref_logp is not None:
        stats["kl/ref"] = _mean(kl if kl is not None else _k3(x, s, coef_1), mask)
    if clipped:  # TRL's clip_ratio/* metrics, as token shares (bool sums: no float copies)
        r, n_valid = coef_1.detach(), mask.sum()
        low = (r < 1 - s.epsilon_low) & (adv < 0) & mask
        high = (r > 1 + s.epsilon_high) & (adv > 0) & mask
        stats.update({"clip_ratio/low_mean": low.sum() / n_valid, "clip_ratio/high_mean": high.sum() / n_valid,
                      "clip_ratio/region_mean": (low | high).sum() / n_valid})
    if gates is not None:
        stats.update(gate_metrics(*gate_sums(gates, x.entropy, mask)))
    stats.update(extra or {})
    values = torch.stack([v.float().reshape(()) for v in stats.values()]).tolist()  # one device sync
    metrics = dict(zip(stats, values))
    metrics.setdefault("kl/ref", float("nan"))
    return LossOutput(per_token_loss=per_token_loss, metrics=metrics, gates=gates)


# ---------------------------------------------------------------------------------------------------------------------
# methods


@register_loss("grpo")
def grpo(x: LossInputs, s: LossSettings) -> LossOutput:
    """TRL 1.16 GRPO per-token loss (loss types grpo / bnpo / dr_grpo / dapo; token-level IS).

    ``r_t = exp(logp_t - old_logp_t)``; ``loss_t = -min(r_t A, clip(r_t, 1-ε_low, 1+ε_high) A) + β k3_t``,
    ``k3_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1`` (times ``r_t`` if ``kl_bias_correction``), all
    ``(B, T)``, 0 outside mask. Not covered: TRL's ``delta`` (two-sided clip), sequence-level IS, vLLM IS
    correction, off-policy mask and ``top_entropy_quantile`` (see ``high_entropy``).
    """
    adv = _check_inputs(x)
    coef_1 = torch.exp(x.logp - x.old_logp.detach())  # (B, T)
    return _finish(x, s, _clipped_surrogate(coef_1, adv, s), coef_1, adv)


@register_loss("entropy_bonus")
def entropy_bonus(x: LossInputs, s: LossSettings) -> LossOutput:
    """GRPO minus an entropy bonus: ``loss_t = grpo_t - entropy_coef * H_t`` (entropy regularisation, "w/ En").

    ``H_t`` keeps its gradient. Deviation from TRL's ``entropy_coef``: TRL subtracts ``coef * token-mean(H)``
    after aggregation; here the bonus is per token, so it equals TRL's under ``loss_type="bnpo"`` and is
    weighted like the policy term (per-sequence mean, ...) under the other loss types.
    """
    adv = _check_inputs(x)
    coef_1 = torch.exp(x.logp - x.old_logp.detach())
    policy = _clipped_surrogate(coef_1, adv, s)
    if s.entropy_coef > 0.0:
        policy = policy - s.entropy_coef * x.entropy
    return _finish(x, s, policy, coef_1, adv)


@register_loss("entropy_adv")
def entropy_adv(x: LossInputs, s: LossSettings) -> LossOutput:
    """Entropy-based advantage shaping (Cheng et al. 2506.14758, "Reasoning with Exploration").

    ``A'_t = A_t + min(α · H_t.detach(), |A_t| / κ)`` (α = entropy_adv_alpha, κ = entropy_adv_kappa), then the
    GRPO clipped surrogate with ``A'``. The cap keeps the sign of A. The paper's "w/ Adv" column is most
    likely this method, but the identity is unconfirmed (reference/paper.md §4). α = 0 gives grpo.
    """
    adv = _check_inputs(x)
    coef_1 = torch.exp(x.logp - x.old_logp.detach())
    shaped = adv
    if s.entropy_adv_alpha > 0.0:
        bonus = torch.minimum(s.entropy_adv_alpha * x.entropy.detach(), adv.abs() / s.entropy_adv_kappa)  # (B, T)
        shaped = adv + bonus
        extra = {"adv/entropy_bonus_mean": _mean(bonus, x.mask)}
    else:
        extra = {}
    return _finish(x, s, _clipped_surrogate(coef_1, shaped, s), coef_1, shaped, extra=extra)


@register_loss("clip_cov")
def clip_cov(x: LossInputs, s: LossSettings) -> LossOutput:
    """Clip-Cov (Cui et al. 2505.22617), as verl ``compute_policy_loss_clip_cov``.

    PPO surrogate; ``Cov_t`` centred over all valid tokens; candidates = valid tokens not already clipped by
    PPO with ``clip_cov_lb < Cov_t < clip_cov_ub``; ``max(1, int(N * clip_cov_ratio))`` of them, drawn
    uniformly at random (``torch.randperm`` with ``inputs.generator``), get their loss (and gradient) set to
    0. No candidate -> identical to grpo. The verl recipe sets epsilon 1/1 (PPO clip effectively off).
    """
    adv = _check_inputs(x)
    mask = x.mask
    coef_1 = torch.exp(x.logp - x.old_logp.detach())
    surrogate = _clipped_surrogate(coef_1, adv, s)  # (B, T) = max(pg1, pg2)
    with torch.no_grad():
        pg1 = -adv * coef_1
        pg2 = -adv * torch.clamp(coef_1, 1 - s.epsilon_low, 1 + s.epsilon_high)
        clipped_by_ppo = (pg2 > pg1) & mask
        cov = token_covariance(x.logp, x.advantages, mask)  # (B, T)
        candidates = mask & ~clipped_by_ppo & (cov > s.clip_cov_lb) & (cov < s.clip_cov_ub)
        cand_idx = torch.nonzero(candidates.reshape(-1)).squeeze(1)  # (n_cand,) flat indices
        n_pick = min(max(1, int(int(mask.sum()) * s.clip_cov_ratio)), cand_idx.numel())
        perm = torch.randperm(cand_idx.numel(), generator=x.generator, device=x.generator.device if x.generator else "cpu")
        picked = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
        picked[cand_idx[perm[:n_pick].to(mask.device)]] = True
        picked = picked.view(mask.shape)  # (B, T)
    policy = torch.where(picked, 0.0, surrogate) if n_pick else surrogate
    return _finish(x, s, policy, coef_1, adv, extra={"clip_cov/share": _mean(picked.float(), mask)})


@register_loss("kl_cov")
def kl_cov(x: LossInputs, s: LossSettings) -> LossOutput:
    """KL-Cov (Cui et al. 2505.22617), as verl ``compute_policy_loss_kl_cov``.

    ``loss_t = -A_t r_t + kl_cov_coef · |logp_t - old_logp_t| · 1[t ∈ top-k Cov]``, k = max(1, int(N ·
    kl_cov_ratio)), Cov centred over all valid tokens. As in verl there is NO PPO clipping on any token, and
    the "KL" is to the old (rollout) policy: on-policy it is 0 with gradient 0 (d|x|/dx = 0 at 0), so the
    method acts only from the second update on a rollout batch. On-policy it equals grpo.
    """
    adv = _check_inputs(x)
    mask = x.mask
    log_ratio = x.logp - x.old_logp.detach()
    coef_1 = torch.exp(log_ratio)
    policy = -adv * coef_1  # (B, T), unclipped (verl)
    cov = token_covariance(x.logp, x.advantages, mask)
    selected = topk_mask(cov, mask, max(1, int(int(mask.sum()) * s.kl_cov_ratio)), largest=True)  # (B, T)
    if s.kl_cov_coef > 0.0:
        policy = policy + torch.where(selected, s.kl_cov_coef * log_ratio.abs(), 0.0)
    return _finish(x, s, policy, coef_1, adv, clipped=False, extra={"kl_cov/share": _mean(selected.float(), mask)})


@register_loss("high_entropy")
def high_entropy(x: LossInputs, s: LossSettings) -> LossOutput:
    """Policy gradient only on high-entropy "forking" tokens (Wang et al. 2506.01939, "Beyond the 80/20 Rule").

    Source: Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR @6f5dda6 (fix 137d8d1), ``verl/trainer/ppo/core_algos.py``
    ``get_global_entropy_top_mask`` + ``compute_policy_loss_vanilla``, called per micro-batch from
    ``verl/workers/actor/dp_actor.py``. There the top ``k = max(1, int(N · ρ + 0.9999))`` of the N valid tokens
    by entropy form S (an exact count; ties here by flat index), and the policy term is
    ``agg_loss(pg, response_mask * entropy_top_mask, "token-mean")``: the mean over S, not over all N.
    The reference KL (``use_kl_loss``) keeps ``response_mask``, so it is a mean over all N. Per token::

        loss_t = (N / k) · 1[t ∈ S] · (-min(r_t A, clip(r_t) A)) + β k3_t        (B, T), 0 outside mask

    The trainer divides by N (``bnpo``, verl token-mean per micro-batch). That gives Wang's
    ``mean_{t∈S} pg_t + β mean_t k3_t``. Without the N / k factor (TRL's ``top_entropy_quantile``) the policy
    term is k / N ≈ ρ times theirs, so it is 5× weaker against the KL term and the gradient clip.
    Under ``dapo`` the factor is applied per micro-batch, giving ≈ the mean over S of the generation batch.
    Under ``grpo`` (per-sequence mean) the factor is also one per micro-batch; it is not verl's
    seq-mean-token-mean over S, which is undefined for a row with no token in S. ρ = 1 gives grpo.
    """
    adv = _check_inputs(x)
    mask = x.mask
    coef_1 = torch.exp(x.logp - x.old_logp.detach())
    n = int(mask.sum())
    # Wang's "ceil": int(N·ρ + 0.9999). It differs from math.ceil when N·ρ lies less than 1e-4 above an integer,
    # e.g. by rounding: 100 · 0.07 = 7.000000000000001 -> math.ceil 8, theirs 7.
    k = min(n, max(1, int(n * s.high_entropy_ratio + 0.9999))) if n else 0
    keep = topk_mask(x.entropy, mask, k, largest=True) if k else mask  # (B, T) the set S
    policy = _clipped_surrogate(coef_1, adv, s) * keep  # (B, T)
    if 0 < k < n:
        policy = policy * (n / k)  # the trainer's mean over N becomes the mean over S
    return _finish(x, s, policy, coef_1, adv, extra={"share/high_entropy": _mean(keep.float(), mask)})


@register_loss("sent")
def sent(x: LossInputs, s: LossSettings) -> LossOutput:
    """SENT, paper formula (reference/paper.md §1.6, §1.8): GRPO surrogate plus a token-selective KL.

    ``loss_t = -min(r_t A, clip(r_t) A) + β k3_t + β_t k3_t`` with ``β_t`` from ``compute_gates``: β_high on
    T_high-cov, β_low on the rest of T_low (bottom ``low_entropy_ratio`` by entropy), 0 elsewhere. k3 is TRL's
    estimator to π_ref (the paper's estimator is UNKNOWN), times r_t if ``kl_bias_correction``. T_high-cov:
    ``high_cov_threshold`` (paper τ_cov) or ``high_cov_ratio`` (released 0.0002), exactly one set.
    Ablations: ``use_low_entropy_kl=False`` -> no token KL (β_t = 0, gates still returned for analysis);
    ``use_high_cov_tier=False`` -> β_low on all of T_low (``high_cov`` still marks the subset).
    Needs ``ref_logp`` whenever the token KL is on. β_low = β_high = 0 gives grpo exactly.
    """
    adv = _check_inputs(x)
    coef_1 = torch.exp(x.logp - x.old_logp.detach())
    policy = _clipped_surrogate(coef_1, adv, s)  # (B, T)
    gates = compute_gates(
        x.entropy, x.logp, x.advantages, x.mask,
        low_entropy_ratio=s.low_entropy_ratio, beta_low=s.beta_low,
        beta_high=s.beta_high if s.use_high_cov_tier else s.beta_low,
        high_cov_threshold=s.high_cov_threshold, high_cov_ratio=s.high_cov_ratio, center=s.cov_center, eligible=x.eligible,
    )
    token_kl_on = s.use_low_entropy_kl and s.beta_high > 0.0
    if not token_kl_on:
        gates = gates._replace(beta=torch.zeros_like(gates.beta))
    kl = None
    if token_kl_on or s.beta > 0.0:
        _need_ref(x, "the sent token KL is on (use_low_entropy_kl with beta_low/beta_high > 0)" if token_kl_on else f"beta = {s.beta} > 0")
        kl = _k3(x, s, coef_1)
    if s.beta > 0.0:  # TRL order: policy + beta*kl first, so beta-only runs match grpo bit for bit
        policy = policy + s.beta * kl
    if token_kl_on:
        policy = policy + gates.beta.to(kl.dtype) * kl
    return _finish(x, s, policy, coef_1, adv, add_ref_kl=False, kl=kl, gates=gates)


def _verl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """verl ``low_var_kl``: k3 with ``ref - logp`` clamped to [-20, 20] and the result to [-10, 10]."""
    diff = torch.clamp(ref_logp.detach() - logp, min=-20, max=20)
    return torch.clamp(torch.exp(diff) - diff - 1, min=-10, max=10)


@torch.no_grad()
def _release_covariance(x: LossInputs, low: Tensor, int_mask_indexing: bool) -> Tensor:
    """Cov_t on T_low as the released code computes it, 0 elsewhere; (B, T) float32.

    Default: ``token_covariance`` centred over T_low (the evident intent). With
    ``release_int_mask_indexing`` the released bug is reproduced: ``advantages[response_mask]`` with an int64
    0/1 mask gathers ROWS, giving a (B, T, T) tensor whose flattened element ``i`` is
    ``src[mask.flat[i // T], i % T]``; the code then reads the elements at the valid-token ranks of the
    low-entropy tokens. So the low-entropy token with rank ``i`` among the valid tokens (row-major) gets
    the advantage and log-prob of row ``mask.flat[i // T]`` (0 or 1), column ``i % T``, with verl's
    advantages zero on padding. Selection still lands on the true T_low positions, ranked by these values.
    """
    if not int_mask_indexing:
        return token_covariance(x.logp, x.advantages, x.mask, subset=low)
    mask = x.mask
    B, T = mask.shape
    if B < 2 and bool(mask.any()):
        raise ValueError("release_int_mask_indexing needs B >= 2: the released code gathers row 1, which does not exist")
    adv = x.advantages.detach().float()
    adv = adv.unsqueeze(1).expand(mask.shape) if adv.dim() == 1 else adv
    adv = torch.where(mask, adv, 0.0)  # verl: scores.unsqueeze(-1) * response_mask
    rank = torch.cumsum(mask.reshape(-1), 0) - 1  # (B*T,) rank among valid tokens
    i = rank[low.reshape(-1)]  # (n_low,) ranks of T_low, row-major
    rows, cols = mask.reshape(-1)[i // T].long(), i % T
    low_adv, low_logp = adv[rows, cols], x.logp.detach().float()[rows, cols]
    cov_low = (low_adv - low_adv.mean()) * (low_logp - low_logp.mean())
    cov = torch.zeros(mask.numel(), dtype=torch.float32, device=mask.device)
    cov[low.reshape(-1)] = cov_low
    return cov.view(mask.shape)


@register_loss("sent_release")
def sent_release(x: LossInputs, s: LossSettings) -> LossOutput:
    """SENT as released (``compute_policy_loss_low_entropy_kl_cov_v2``, reference/paper.md §1.8 steps 1-9).

    ``loss_t = -A_t r_t + c_t |logp_t - old_logp_t| + β k3v_t``: NO PPO clipping; T_low = bottom
    ``low_entropy_ratio`` by entropy; Cov centred over T_low; k = max(1, int(|T_low| · release_kl_cov_ratio));
    ``c_t = release_kl_coef · release_high_coef`` (0.2) on the k largest Cov in T_low and
    ``release_kl_coef · release_low_coef`` (0.05) on the k smallest (the latter wins where they overlap, as
    in the release), 0 elsewhere. The "KL" is to the OLD policy (0 with zero gradient on-policy). ``k3v`` is
    verl's clamped k3 to π_ref (``kl_bias_correction`` is ignored: verl has none). ``gates.high_cov`` is the
    top-k set; the bottom-k set shows in ``gates.beta``. ``cov_center`` is ignored (always T_low).
    ``release_int_mask_indexing=True`` reproduces the int64-mask row-gather bug (see ``_release_covariance``).
    Ties are broken by flat index (the release's ``torch.topk`` leaves them unspecified).
    """
    adv = _check_inputs(x)
    mask = x.mask
    log_ratio = x.logp - x.old_logp.detach()
    coef_1 = torch.exp(log_ratio)
    policy = -adv * coef_1  # (B, T)
    low = low_entropy_mask(x.entropy, mask, s.low_entropy_ratio, x.eligible)
    n_low = int(low.sum())
    cov = _release_covariance(x, low, s.release_int_mask_indexing) if n_low else torch.zeros(mask.shape, device=mask.device)
    with torch.no_grad():
        k = max(1, int(n_low * s.release_kl_cov_ratio))
        top = topk_mask(cov, low, k, largest=True) if n_low else low
        bottom = topk_mask(cov, low, k, largest=False) if n_low else low
        high_c, low_c = s.release_kl_coef * s.release_high_coef, s.release_kl_coef * s.release_low_coef
        coef = torch.where(bottom, low_c, torch.where(top, high_c, 0.0))  # (B, T) float32
    if high_c > 0.0 or low_c > 0.0:
        policy = policy + coef.to(log_ratio.dtype) * log_ratio.abs()
    kl = None if x.ref_logp is None else _verl_k3(x.logp, x.ref_logp)
    if s.beta > 0.0:
        _need_ref(x, f"beta = {s.beta} > 0")
        policy = policy + s.beta * kl
    gates = TokenGates(beta=coef, low_entropy=low, high_cov=top, covariance=cov)
    return _finish(x, s, policy, coef_1, adv, clipped=False, add_ref_kl=False, kl=kl, gates=gates)
