"""How a resolved plan reads against the authors' released scripts (``reproduce/reference/released_config.yaml``).

Each entry maps a field of the release to ``(plan, recipe) -> value`` in the release's units, where ``plan`` is a
:class:`sent.plans.RunPlan` and ``recipe`` its effective values (``sent.plans.effective_values``: the recipe
parsed as ``sent train`` parses it, so every default comes from its one declaration). tests/test_plan_audit.py compares them for the
paper-1.5b ``sent_release`` run; every difference must be listed in docs/METHODS.md ("Deviations from the authors'
scripts") with its reason.
"""

from __future__ import annotations


#: Audited fields of the release -> their value in our plan (see the module docstring).
RELEASED_FIELDS = {
    "prompts_per_generation_batch": lambda rp, r: rp.prompts_per_generation,
    "samples_per_prompt": lambda rp, r: rp.samples_per_prompt,
    "prompts_per_update": lambda rp, r: rp.prompts_per_update,
    "updates_per_generation_batch": lambda rp, r: rp.updates_per_generation,
    "micro_batch_per_gpu": lambda rp, r: rp.micro_batch,
    "ppo_epochs": lambda rp, r: r["num_iterations"],
    "epochs_per_stage": lambda rp, r: rp.epochs_per_prompt,
    "n_stages": lambda rp, r: len(rp.stage_sizes),
    "optimizer_reset_per_stage": lambda rp, r: "fresh optimizer" in rp.stage_boundary,
    "reference_reset_per_stage": lambda rp, r: "pi_ref = stage k-1" in rp.stage_boundary,
    "learning_rate": lambda rp, r: r["learning_rate"],
    "lr_schedule": lambda rp, r: r["lr_scheduler_type"],
    "warmup_steps": lambda rp, r: r["warmup_steps"],
    "weight_decay": lambda rp, r: r["weight_decay"],
    "grad_clip": lambda rp, r: r["max_grad_norm"],
    "adam_beta1": lambda rp, r: r["adam_beta1"],
    "adam_beta2": lambda rp, r: r["adam_beta2"],
    "adam_eps": lambda rp, r: r["adam_epsilon"],
    "max_response_length": lambda rp, r: rp.train_max_new_tokens,
    "rollout_temperature": lambda rp, r: r["temperature"],
    "rollout_top_p": lambda rp, r: r["top_p"],
    "rollout_top_k": lambda rp, r: -1 if r["top_k"] in (0, None) else r["top_k"],
    "rollout_engine": lambda rp, r: "vllm" if r["use_vllm"] else "hf",
    "use_kl_loss": lambda rp, r: r["beta"] > 0,
    "kl_loss_coef": lambda rp, r: r["beta"],
    "kl_loss_type": lambda rp, r: "k3+is" if r["use_bias_correction_kl"] else "low_var_kl",
    "use_kl_in_reward": lambda rp, r: False,
    "entropy_coeff": lambda rp, r: r["entropy_coef"],
    "clip_ratio_low": lambda rp, r: r["epsilon"],
    "clip_ratio_high": lambda rp, r: r["epsilon_high"] or r["epsilon"],
    "loss_agg_mode": lambda rp, r: {"bnpo": "token-mean", "grpo": "seq-mean-token-mean",
                                    "dr_grpo": "seq-mean-token-sum-norm"}.get(r["loss_type"], r["loss_type"]),
    "adv_estimator": lambda rp, r: "grpo",
    "norm_adv_by_std_in_grpo": lambda rp, r: r["scale_rewards"] != "none",
    "low_entropy_ratio": lambda rp, r: r["low_entropy_ratio"],
    "kl_cov_ratio": lambda rp, r: r["release_kl_cov_ratio"],
    "ppo_kl_coef": lambda rp, r: r["release_kl_coef"],
    "high_cov_factor": lambda rp, r: r["release_high_coef"],
    "low_cov_factor": lambda rp, r: r["release_low_coef"],
    "beta_high": lambda rp, r: r["release_kl_coef"] * r["release_high_coef"],
    "beta_low": lambda rp, r: r["release_kl_coef"] * r["release_low_coef"],
    "master_weight_dtype": lambda rp, r: rp.master_dtype.split()[0],
    "compute_dtype": lambda rp, r: rp.compute_dtype.split()[0],
    "n_gpus": lambda rp, r: rp.num_processes,
    "reward_correct": lambda rp, r: r["reward_correct"],
    "reward_incorrect": lambda rp, r: r["reward_incorrect"],
    "gradient_checkpointing": lambda rp, r: bool(r["gradient_checkpointing"]),
    "rollout_gpu_memory_utilization": lambda rp, r: r["vllm_gpu_memory_utilization"],
    "rollout_tensor_parallel_size": lambda rp, r: r["vllm_tensor_parallel_size"],
    "ppo_shuffle": lambda rp, r: True,  # TRL shuffles each generation batch before splitting it into updates
    "dynamic_sampling": lambda rp, r: False,
    "save_freq": lambda rp, r: r["save_steps"],
    "ref_dtype": lambda rp, r: str(r["dtype"]),  # TRL loads pi_ref in the policy's dtype
    "max_prompt_length": lambda rp, r: r.get("max_prompt_length"),  # TRL 1.16 has no prompt limit
    "cov_mask_indexing_bug": lambda rp, r: bool(r["release_int_mask_indexing"]),
}
