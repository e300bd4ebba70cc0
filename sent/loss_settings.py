"""``LossSettings``: the one declaration of every knob of the ``sent.losses`` registry.

Each field carries its default, its help text (``metadata["help"]``: unit, range, the value of the paper or of the
released code, the section of ``reference/paper.md``) and its range check, in :meth:`LossSettings.validate`.
``SENTConfig`` (``sent.trainer_config``) takes its loss fields from here, so ``sent train --help`` shows these texts
and defaults and a config is validated by the same ``validate``. Fields whose value SENTConfig reads from one of
TRL's own ``GRPOConfig`` fields name it in ``metadata["trl_field"]`` (``epsilon_low`` <- ``epsilon``, ...); TRL
declares those, except where ``metadata["override_trl"]`` is set: then SENTConfig redeclares TRL's field with the
default and help given here (``use_bias_correction_kl``: False here, True in TRL).

A new knob: one field here (default, help, and its check in ``validate``); SENTConfig and the CLI get it from it.
No torch here: the config imports this module without the loss code.
"""

import math
from dataclasses import dataclass, field, fields


__all__ = ["LossSettings"]


def _knob(default, text: str, *, trl_field: str | None = None, override_trl: bool = False):
    """A LossSettings field: ``default`` and help ``text``; ``trl_field``: the GRPOConfig field SENTConfig reads it from."""
    metadata = {"help": text}
    if trl_field is not None:
        metadata["trl_field"] = trl_field
    if override_trl:
        metadata["override_trl"] = True
    return field(default=default, metadata=metadata)


@dataclass
class LossSettings:
    """Every knob of every method (see the module docstring). Validated on construction by :meth:`validate`."""

    # --- PPO clip and the reference KL (TRL's own GRPOConfig fields) ---
    epsilon_low: float = _knob(0.2, (
        "PPO clip: the ratio is clipped below at 1 - epsilon_low, in [0, 1] (TRL epsilon; paper recipe 0.2, "
        "reference/paper.md §3)."), trl_field="epsilon")
    epsilon_high: float = _knob(0.2, (
        "PPO clip: the ratio is clipped above at 1 + epsilon_high, >= 0 (TRL epsilon_high, where None means "
        "epsilon; paper recipe 0.2, §3)."), trl_field="epsilon_high")
    beta: float = _knob(0.0, (
        "Coefficient (>= 0) of the k3 KL to the reference on ALL valid tokens, every method (TRL beta; released "
        "recipe kl_loss_coef 0.001, §1.7). 0 switches it off."), trl_field="beta")
    kl_bias_correction: bool = _knob(False, (
        "Multiply the reference-KL terms (global k3 and SENT's token KL) by the IS ratio exp(logp - old_logp). "
        "Default False as verl and the authors' fork (their k3 has no such factor); TRL's own default is True. "
        "sent_release ignores it (verl's clamped k3)."), trl_field="use_bias_correction_kl", override_trl=True)
    # --- SENT token gates (paper §1.4-1.8) ---
    low_entropy_ratio: float = _knob(0.8, (
        "sent, sent_release: fraction (0, 1] of the valid tokens of the micro-batch, lowest entropy first, forming "
        "the low-entropy set. Paper/released code: 0.8 (bottom 80%, reference/paper.md §1.4, §1.8 step 4). The "
        "other methods use it only for the logged gate metrics and recorded rollouts."))
    beta_low: float = _knob(0.05, (
        "sent: KL coefficient (>= 0) on low-entropy tokens outside the high-covariance tier. Released code: "
        "0.1 x 0.5 = 0.05 (reference/paper.md §1.6, §3)."))
    beta_high: float = _knob(0.2, (
        "sent: KL coefficient (>= beta_low) on the high-covariance tier of the low-entropy set. Released code: "
        "0.1 x 2.0 = 0.2 (§1.6). 0 switches the token KL off."))
    high_cov_ratio: float | None = _knob(0.0002, (
        "sent: fraction (0, 1] of the low-entropy tokens, highest covariance first, forming the high-cov tier (at "
        "least 1 token). Released code: 0.0002 (top 0.02%). Set to None to use high_cov_threshold instead."))
    high_cov_threshold: float | None = _knob(None, (
        "sent: absolute covariance threshold tau_cov; the high-cov tier is the low-entropy tokens with Cov_t > "
        "tau_cov (paper's form; value UNKNOWN, reference/paper.md §1.6, §6). Exclusive with high_cov_ratio."))
    cov_center: str = _knob("low", (
        "sent: where the covariance means are taken: 'low' (over the low-entropy set, released code, §1.5) or "
        "'valid' (all valid tokens, paper text). sent_release always centres over the low-entropy set."))
    use_low_entropy_kl: bool = _knob(True, (
        "sent ablation switch of the whole token-level KL. True (with beta_high > 0): beta_t x k3 to the reference "
        "is added per token, beta_t = beta_high on the high-cov tier (beta_low if use_high_cov_tier is False), "
        "beta_low on the rest of the low-entropy set, 0 elsewhere. False: no token-level KL on any token, neither "
        "tier (beta_t = 0 everywhere; the sets are still computed, logged and recorded, beta/* log 0) and no "
        "reference model unless beta > 0; the global k3 term (beta) is unchanged. Other methods ignore it."))
    use_high_cov_tier: bool = _knob(True, (
        "sent ablation: False -> beta_low on the whole low-entropy set, the high-cov tier included (it is still "
        "computed and recorded); True -> beta_high on the tier."))
    # --- baselines (reference/peers.md §2-3) ---
    entropy_coef: float = _knob(0.0, (
        "entropy_bonus: loss_t -= entropy_coef * H_t (>= 0). 0 is TRL's default; SENTConfig rejects a non-zero "
        "value for the other methods. The profiles set the exploratory repo script's 0.001 (paper value UNKNOWN, "
        "§4)."), trl_field="entropy_coef")
    entropy_adv_alpha: float = _knob(0.4, (
        "entropy_adv: scale alpha (>= 0) of the detached entropy advantage term, A + min(alpha * H_t, |A| / kappa) "
        "(Cheng et al. 2506.14758; paper value UNKNOWN, §4). 0 gives grpo."))
    entropy_adv_kappa: float = _knob(2.0, (
        "entropy_adv: clip kappa (> 0); the entropy term is capped at |A| / kappa (Cheng et al.)."))
    clip_cov_ratio: float = _knob(0.0002, (
        "clip_cov: fraction (0, 1] of valid tokens whose gradient is detached (verl default and Cui et al.'s 7B/32B "
        "recipes: 0.0002; their recipes also set epsilon = epsilon_high = 1)."))
    clip_cov_lb: float = _knob(1.0, (
        "clip_cov: lower covariance bound of candidates, < clip_cov_ub (verl default and Cui et al.'s recipes: "
        "1.0)."))
    clip_cov_ub: float = _knob(5.0, (
        "clip_cov: upper covariance bound of candidates (verl default and Cui et al.'s recipes: 5.0)."))
    kl_cov_ratio: float = _knob(0.0002, (
        "kl_cov: fraction (0, 1] of valid tokens, highest covariance first, that get |logp - old_logp| (verl and "
        "SENT fork default 0.0002; Cui et al.'s 7B recipe 0.002, 32B 0.0002)."))
    kl_cov_coef: float = _knob(0.1, (
        "kl_cov: coefficient ppo_kl_coef (>= 0) of |logp - old_logp| (SENT fork / verl config default 0.1; Cui et "
        "al.'s recipes 1)."))
    high_entropy_ratio: float = _knob(0.2, (
        "high_entropy: fraction (0, 1] of the highest-entropy tokens of the micro-batch, k = int(N*ratio + 0.9999), "
        "that keep the policy gradient; the policy term is their mean (Wang et al. 2506.01939: 0.2)."))
    # --- sent_release (reference/paper.md §1.5-1.8) ---
    release_kl_cov_ratio: float = _knob(0.0002, (
        "sent_release: top/bottom fraction (0, 1] of the low-entropy set by covariance (released code 0.0002)."))
    release_kl_coef: float = _knob(0.1, "sent_release: ppo_kl_coef, >= 0 (released code 0.1).")
    release_high_coef: float = _knob(2.0, "sent_release: factor (>= 0) on the top-cov tokens (hard-coded 2.0).")
    release_low_coef: float = _knob(0.5, "sent_release: factor (>= 0) on the bottom-cov tokens (hard-coded 0.5).")
    release_int_mask_indexing: bool = _knob(False, (
        "sent_release: reproduce the released code's int64-mask indexing bug exactly (§1.5; see "
        "sent.losses._release_covariance)."))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every range check of the loss knobs; ValueError naming the field (and its TRL field, if any)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{_label(f.name)} must be finite, got {value!r}")
        if not 0.0 <= self.epsilon_low <= 1.0:
            raise ValueError(f"{_label('epsilon_low')} must be in [0, 1] (ratio clipped at 1 - epsilon_low), "
                             f"got {self.epsilon_low}")
        nonneg = ("epsilon_high", "beta", "beta_low", "beta_high", "entropy_coef", "entropy_adv_alpha", "kl_cov_coef",
                  "release_kl_coef", "release_high_coef", "release_low_coef")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"{_label(name)} must be >= 0 (0 switches its term off), got {getattr(self, name)}")
        ratios = ("low_entropy_ratio", "clip_cov_ratio", "kl_cov_ratio", "high_entropy_ratio", "release_kl_cov_ratio")
        for name in ratios + (("high_cov_ratio",) if self.high_cov_ratio is not None else ()):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a fraction and must be in (0, 1], got {getattr(self, name)}")
        if self.beta_high < self.beta_low:
            raise ValueError(f"beta_high ({self.beta_high}) must be >= beta_low ({self.beta_low}); the paper has "
                             "beta_high > beta_low")
        if (self.high_cov_ratio is None) == (self.high_cov_threshold is None):
            raise ValueError("set exactly one of high_cov_ratio (top fraction, released 0.0002) and high_cov_threshold "
                             "(absolute τ_cov); the other must be None")
        if self.cov_center not in ("low", "valid"):
            raise ValueError(f"cov_center must be 'low' (released code) or 'valid' (all valid tokens), "
                             f"got {self.cov_center!r}")
        if self.entropy_adv_kappa <= 0:
            raise ValueError(f"entropy_adv_kappa must be > 0 (the shaping is capped at |A| / kappa), "
                             f"got {self.entropy_adv_kappa}")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise ValueError(f"clip_cov_lb ({self.clip_cov_lb}) must be < clip_cov_ub ({self.clip_cov_ub})")


def _label(name: str) -> str:
    """``name``, plus the TRL field that carries it in SENTConfig when the names differ."""
    trl = LossSettings.__dataclass_fields__[name].metadata.get("trl_field", name)
    return name if trl == name else f"{name} (SENTConfig: {trl})"
