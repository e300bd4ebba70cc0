"""``SENTConfig``: TRL's ``GRPOConfig`` plus the knobs of the ``sent.losses`` registry, the curriculum and recording.

Every field carries its unit, range, the paper's value and the section of ``reference/paper.md`` it comes from.
``__post_init__`` rejects TRL options that ``SENTTrainer._compute_loss`` does not reproduce, with a message that
says what to use instead.

Off-policy requirement (kl_cov, sent_release). Both penalise ``|log pi_theta - log pi_old|``. When every generation
batch is used for exactly one optimizer step, TRL does not compute ``old_per_token_logps`` (``None`` -> the loss
uses ``logp.detach()``), so the penalty and its gradient are identically 0 (reference/peers.md §2.2). We **refuse**
such configs: set ``steps_per_generation`` to a multiple of ``gradient_accumulation_steps`` greater than it (the
paper: 256 prompts per generation, 128 per optimizer step -> ``steps_per_generation = 2 * gradient_accumulation_steps``)
or ``num_iterations > 1``; then TRL computes the old-policy log-probs itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


# Methods whose penalty is against the old (rollout) policy, so they need several updates per generation batch.
OFF_POLICY_METHODS = ("kl_cov", "sent_release")
# Methods whose token-level KL goes to the reference model even when the global k3 ``beta`` is 0.
REF_KL_METHODS = ("sent",)
SUPPORTED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
GATE_SCOPES = ("micro_batch", "global")
TOKEN_FILTERS = ("none", "content")

# SENTConfig field -> LossSettings field (only where the names differ; TRL's own fields are reused).
_LOSS_SETTING_FIELDS = (
    "low_entropy_ratio", "beta_low", "beta_high", "high_cov_ratio", "high_cov_threshold", "cov_center",
    "use_low_entropy_kl", "use_high_cov_tier", "entropy_coef", "entropy_adv_alpha", "entropy_adv_kappa",
    "clip_cov_ratio", "clip_cov_lb", "clip_cov_ub", "kl_cov_ratio", "kl_cov_coef", "high_entropy_ratio",
    "release_kl_cov_ratio", "release_kl_coef", "release_high_coef", "release_low_coef", "release_int_mask_indexing",
)


def _help(text: str) -> dict:
    """Field metadata; '%' is doubled because argparse %-formats help strings (``sent train --help``)."""
    return {"help": text.replace("%", "%%")}


@dataclass
class SENTConfig(GRPOConfig):
    """GRPOConfig + SENT. TRL fields reused as loss settings: ``beta`` (global k3 KL to the reference on all tokens,
    paper 0.001, §1.7), ``use_bias_correction_kl`` (k3 x IS ratio), ``epsilon``/``epsilon_high`` (PPO clip),
    ``entropy_coef`` (only for ``method=entropy_bonus``)."""

    use_bias_correction_kl: bool = field(default=False, metadata=_help(
        "Multiply the reference-KL terms (global k3 and SENT's token KL) by the IS ratio exp(logp - old_logp). "
        "Default False as verl and the authors' fork (their k3 has no such factor); TRL's own default is True."))
    method: str = field(default="sent", metadata=_help(
        "Loss from the sent.losses registry: grpo, entropy_bonus, entropy_adv, clip_cov, kl_cov, high_entropy, sent, "
        "sent_release (DESIGN.md §5)."))
    # --- SENT token gates (paper §1.7-1.8) ---
    low_entropy_ratio: float = field(default=0.8, metadata=_help(
        "Fraction (0..1] of valid tokens of the micro-batch, lowest entropy first, forming the low-entropy set. "
        "Paper/released code: 0.8 (bottom 80%, paper.md §1.8 step 4)."))
    beta_low: float = field(default=0.05, metadata=_help(
        "KL coefficient (>=0) on low-entropy tokens outside the high-covariance tier. Released code: 0.1 x 0.5 = "
        "0.05 (paper.md §3)."))
    beta_high: float = field(default=0.2, metadata=_help(
        "KL coefficient (>=0) on the high-covariance tier of the low-entropy set. Released code: 0.1 x 2.0 = 0.2."))
    high_cov_ratio: float | None = field(default=0.0002, metadata=_help(
        "Fraction (0..1] of low-entropy tokens, highest covariance first, forming the high-cov tier. Released code: "
        "0.0002 (top 0.02%, at least 1 token). Set to None to use high_cov_threshold instead."))
    high_cov_threshold: float | None = field(default=None, metadata=_help(
        "Absolute covariance threshold tau_cov (paper's form; value UNKNOWN, paper.md §6). Exclusive with "
        "high_cov_ratio."))
    cov_center: str = field(default="low", metadata=_help(
        "Where covariance means are taken: 'low' (over the low-entropy set, released code) or 'valid' (all valid tokens, paper text)."))
    use_low_entropy_kl: bool = field(default=True, metadata=_help(
        "Ablation: apply beta_low on low-entropy tokens (False -> only the high-cov tier gets a KL)."))
    use_high_cov_tier: bool = field(default=True, metadata=_help(
        "Ablation: use the high-covariance tier with beta_high (False -> beta_low on the whole low-entropy set)."))
    # --- baselines (peers.md §2-3) ---
    entropy_adv_alpha: float = field(default=0.4, metadata=_help(
        "entropy_adv: scale alpha of the detached entropy advantage term (Cheng et al. 2506.14758; paper value "
        "UNKNOWN)."))
    entropy_adv_kappa: float = field(default=2.0, metadata=_help(
        "entropy_adv: clip kappa, the entropy term is capped at |A|/kappa (Cheng et al.)."))
    clip_cov_ratio: float = field(default=0.0002, metadata=_help(
        "clip_cov: fraction (0..1] of valid tokens whose gradient is detached (verl default and Cui et al.'s 7B/32B "
        "recipes: 0.0002; their recipes also set epsilon = epsilon_high = 1)."))
    clip_cov_lb: float = field(default=1.0, metadata=_help(
        "clip_cov: lower covariance bound of candidates (verl default and Cui et al.'s recipes: 1.0)."))
    clip_cov_ub: float = field(default=5.0, metadata=_help(
        "clip_cov: upper covariance bound of candidates (verl default and Cui et al.'s recipes: 5.0)."))
    kl_cov_ratio: float = field(default=0.0002, metadata=_help(
        "kl_cov: fraction (0..1] of valid tokens, highest covariance first, that get |logp-old| (verl and SENT fork "
        "default 0.0002; Cui et al.'s 7B recipe 0.002, 32B 0.0002)."))
    kl_cov_coef: float = field(default=0.1, metadata=_help(
        "kl_cov: coefficient ppo_kl_coef of |logp-old| (SENT fork / verl config default 0.1; Cui et al.'s recipes "
        "1). Same default as sent.losses.LossSettings."))
    high_entropy_ratio: float = field(default=0.2, metadata=_help(
        "high_entropy: fraction (0..1] of highest-entropy tokens of the micro-batch, k = int(N*ratio + 0.9999), that "
        "keep the policy gradient; the policy term is their mean (2506.01939: 0.2)."))
    release_kl_cov_ratio: float = field(default=0.0002, metadata=_help(
        "sent_release: top/bottom fraction of the low-entropy set by covariance (released code 0.0002)."))
    release_kl_coef: float = field(default=0.1, metadata=_help("sent_release: ppo_kl_coef (released code 0.1)."))
    release_high_coef: float = field(default=2.0, metadata=_help("sent_release: factor on the top-cov tokens (2.0)."))
    release_low_coef: float = field(default=0.5, metadata=_help("sent_release: factor on the bottom-cov tokens (0.5)."))
    release_int_mask_indexing: bool = field(default=False, metadata=_help(
        "sent_release: reproduce the released code's integer-mask indexing quirk exactly (see sent.losses)."))
    # --- curriculum (paper §3) ---
    curriculum_dir: str | None = field(default=None, metadata=_help(
        "Folder with manifest.json + stage_{i}.parquet (sent curriculum). Stages are trained in order, low SE first."))
    epochs_per_stage: int = field(default=5, metadata=_help(
        "Epochs over each curriculum stage (>=1). Released scripts: 5. Runs without a curriculum use num_train_epochs "
        "(a whole number) the same way: passes over the shuffled table."))
    curriculum_stage: int | None = field(default=None, metadata=_help(
        "Train only this curriculum stage (1-based) as its own run, starting from model_name_or_path (the previous "
        "stage's final weights, which TRL also loads as the reference model) with a fresh optimizer and LR schedule, "
        "as the authors' scripts do. None: `sent train` runs every stage in turn, each as its own trainer. "
        "reproduce/run_all.sh runs each stage as its own process (needed under DeepSpeed/FSDP)."))
    # --- token filter (analysis: linguistic filtering) ---
    token_filter: str = field(default="none", metadata=_help(
        "'none' or 'content': with 'content', tokens for which token_filter_fn is False (function words, "
        "punctuation) are excluded from the low-entropy set via LossInputs.eligible."))
    token_filter_fn: str = field(default="analysis.linguistic_filter:content_mask", metadata=_help(
        "Import path 'module:function' of fn(token_strings: list[str]) -> list[bool] (True = eligible)."))
    # --- recording / scope ---
    record_rollouts_every: int = field(default=0, metadata=_help(
        "Write token-level rollouts every N optimizer steps to <output_dir>/rollouts (0 = off)."))
    record_max_rows: int = field(default=256, metadata=_help("At most this many responses per recorded step (>=1)."))
    gate_scope: str = field(default="micro_batch", metadata=_help(
        "'micro_batch': entropy quantile and covariance means per micro-batch per rank (verl, released code); "
        "'global': over the micro-batches of all ranks gathered (like TRL's get_high_entropy_mask)."))

    def __post_init__(self):
        super().__post_init__()
        self._validate_sent()

    def _validate_sent(self) -> None:
        from sent.losses import LOSSES

        if self.method not in LOSSES:
            raise ValueError(f"method={self.method!r} is unknown; valid methods: {', '.join(sorted(LOSSES))}")
        if self.loss_type not in SUPPORTED_LOSS_TYPES:
            raise ValueError(f"loss_type={self.loss_type!r} is not supported by SENTTrainer; use one of "
                             f"{SUPPORTED_LOSS_TYPES} (the registry owns the per-token objective)")
        unsupported = {
            "use_liger_kernel": (self.use_liger_kernel, False, "set use_liger_kernel=false"),
            "importance_sampling_level": (self.importance_sampling_level, "token", "sequence-level IS (GSPO) is not "
                                          "implemented: set importance_sampling_level=token"),
            "top_entropy_quantile": (self.top_entropy_quantile, 1.0, "use method=high_entropy with "
                                     "high_entropy_ratio instead"),
            "use_adaptive_entropy": (self.use_adaptive_entropy, False, "use method=entropy_bonus with a fixed "
                                     "entropy_coef"),
            "off_policy_mask_threshold": (self.off_policy_mask_threshold, None, "set it to None"),
            "delta": (self.delta, None, "two-sided clipping is not implemented: set delta=None"),
            "sync_ref_model": (self.sync_ref_model, False, "the reference is reset at each curriculum stage (stage runs)"),
        }
        for name, (value, ok, fix) in unsupported.items():
            if value != ok:
                raise ValueError(f"{name}={value!r} is not supported by SENTTrainer: {fix}")
        if self.entropy_coef != 0.0 and self.method != "entropy_bonus":
            raise ValueError(f"entropy_coef={self.entropy_coef} is used only by method=entropy_bonus; set it to 0 "
                             "or choose method=entropy_bonus")
        self._validate_ranges()
        if self.method in OFF_POLICY_METHODS and not self.computes_old_logps():
            raise ValueError(
                f"method={self.method} penalises |logp - old_logp|, which is 0 with zero gradient when each generation "
                "batch serves one optimizer step. Set steps_per_generation to a multiple > gradient_accumulation_steps "
                f"(now {self.steps_per_generation} and {self.gradient_accumulation_steps}; the paper uses 2 updates "
                "per generation batch) or num_iterations > 1.")
        if self.save_strategy == "steps" and self.updates_per_generation() > 1:
            if int(self.save_steps) % self.updates_per_generation():
                raise ValueError(
                    f"save_steps={self.save_steps} must be a multiple of the optimizer steps per generation batch "
                    f"({self.updates_per_generation()}), otherwise a resumed run regenerates mid-batch and diverges")

    def _validate_ranges(self) -> None:
        fractions = ["low_entropy_ratio", "clip_cov_ratio", "kl_cov_ratio", "high_entropy_ratio",
                     "release_kl_cov_ratio"]
        if self.high_cov_ratio is not None:
            fractions.append("high_cov_ratio")
        for name in fractions:
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}={value} must be a fraction in (0, 1]")
        for name in ("beta_low", "beta_high", "kl_cov_coef", "release_kl_coef", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if (self.high_cov_ratio is None) == (self.high_cov_threshold is None):
            raise ValueError("set exactly one of high_cov_ratio (released code, 0.0002) and high_cov_threshold "
                             "(paper's tau_cov); the other must be None")
        if self.cov_center not in ("low", "valid"):
            raise ValueError(f"cov_center={self.cov_center!r} must be 'low' or 'valid'")
        if self.gate_scope not in GATE_SCOPES:
            raise ValueError(f"gate_scope={self.gate_scope!r} must be one of {GATE_SCOPES}")
        if self.token_filter not in TOKEN_FILTERS:
            raise ValueError(f"token_filter={self.token_filter!r} must be one of {TOKEN_FILTERS}")
        if self.token_filter == "content" and ":" not in self.token_filter_fn:
            raise ValueError(f"token_filter_fn={self.token_filter_fn!r} must look like 'package.module:function'")
        if self.epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage={self.epochs_per_stage} must be >= 1")
        if self.curriculum_stage is not None and (self.curriculum_stage < 1 or self.curriculum_dir is None):
            raise ValueError(f"curriculum_stage={self.curriculum_stage} needs curriculum_dir and a value >= 1")
        if self.curriculum_dir is None and self.max_steps <= 0 and (
                self.num_train_epochs < 1 or float(self.num_train_epochs) != int(self.num_train_epochs)):
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be a whole number >= 1 (every prompt is "
                             "seen that many times; use max_steps for a partial pass)")
        if self.record_rollouts_every < 0 or self.record_max_rows < 1:
            raise ValueError("record_rollouts_every must be >= 0 (0 = off) and record_max_rows >= 1")

    def updates_per_generation(self) -> int:
        """Optimizer steps served by one generation batch (1 = on-policy)."""
        return max(1, self.steps_per_generation * self.num_iterations // self.gradient_accumulation_steps)

    def computes_old_logps(self) -> bool:
        """Mirror of TRL's rule (grpo_trainer.py L2642): old logps exist when generation is reused across updates."""
        generate_every = self.steps_per_generation * self.num_iterations
        return self.gradient_accumulation_steps % generate_every != 0 or (
            self.use_vllm and self.vllm_importance_sampling_correction)

    def needs_reference(self) -> bool:
        """True when some term compares to pi_ref: the global k3 (beta > 0) or the SENT token KL."""
        token_kl = self.method in REF_KL_METHODS and self.use_low_entropy_kl and self.beta_high > 0
        return self.beta > 0 or token_kl

    def loss_settings(self):
        """The ``sent.losses.LossSettings`` for this config."""
        from sent.losses import LossSettings

        values = {name: getattr(self, name) for name in _LOSS_SETTING_FIELDS}
        values.update(
            epsilon_low=self.epsilon, epsilon_high=self.epsilon_high if self.epsilon_high is not None else self.epsilon,
            beta=self.beta, kl_bias_correction=self.use_bias_correction_kl,
        )
        return LossSettings(**values)
