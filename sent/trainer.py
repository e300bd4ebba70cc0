"""``SENTTrainer``: TRL's ``GRPOTrainer`` with the per-token objective taken from the ``sent.losses`` registry.

Overridden TRL methods (private API, pinned by tests/test_trl_pin.py):

* ``__init__``: forces TRL to build the reference model when a SENT term needs it (``args.beta`` may be 0).
* ``_generate_and_score_completions``: calls TRL, then adds per-row tensors (``sent_row``, ``sent_sample_id``,
  ``sent_stage``, ``sent_reward`` and, with ``token_filter=content``, ``sent_eligible``) so that they are shuffled
  and split with the rows.
* ``_generate_single_turn``: TRL's own, with :mod:`sent.fast_decode` standing in for ``model.generate`` on the
  models it covers (the same tokens, less time; anything else, and vLLM, unchanged).
* ``_compute_loss``: one policy forward (logp + entropy), ``LossInputs`` -> registry loss -> TRL's aggregation
  (``sent.aggregation.aggregate_loss``, a copy of TRL's normalisers for grpo/bnpo/dr_grpo/dapo), metrics (gate
  metrics from ``sent.gating.gate_metrics``), rollout recording.
* ``_save_checkpoint``: HF's checkpoint, written into ``.tmp-checkpoint-<step>/`` and renamed to
  ``checkpoint-<step>/`` once complete (:mod:`sent.checkpoints`), so a kill never leaves a checkpoint a resume
  cannot load; a full disk raises ``sent.io.DiskFullError`` naming the checkpoint.
* ``_get_output_dir``: points HF's checkpoint writer at that staging folder while a checkpoint is saved.

Everything else (generation control, rewards, advantages, old/ref log-probs, buffering, logging, what a checkpoint holds)
is TRL's.
``self.beta`` is TRL's switch for "compute reference log-probs"; the actual k3 coefficient is ``args.beta``
(``LossSettings.beta``). Data order comes from ``sent.curriculum.build_curriculum_dataset`` + ``shuffle_dataset=False``.

Curriculum stages are separate trainings (``sent train`` runs one trainer per stage, as the authors' scripts do):
stage k starts from stage k-1's final weights, which are also its reference model, with a fresh optimizer and LR
schedule. ``step_offset`` makes the logged steps and rollout files of stage k continue those of stage k-1.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import TrainerCallback
from trl import GRPOTrainer

from sent.aggregation import aggregate_loss
from sent.artifacts import ROLLOUTS, append_metrics
from sent.gating import compute_gates, gate_metrics, gate_sums
from sent.losses import LossInputs, get_loss
from sent.trainer_config import SENTConfig, check_token_filter_fn


logger = logging.getLogger(__name__)

_MM_KEYS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
            "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


def load_token_filter(path: str):
    """Import ``'module:function'`` -> callable(list[str]) -> list[bool]; only the project's own modules unless
    custom filters are allowed (``sent.trainer_config.check_token_filter_fn``)."""
    check_token_filter_fn(path)
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"token_filter_fn={path!r} cannot be imported ({err}); pass 'package.module:function'") from err


class MetricsJSONLCallback(TrainerCallback):
    """Append one ``metrics.jsonl`` row per optimizer step to ``path`` on the main process
    (``sent.artifacts.append_metrics``); ``step_offset`` is added to the trainer's step (the steps of earlier
    curriculum stages). Evaluation logs and the end-of-training summary are not written."""

    def __init__(self, path: str | Path, step_offset: int = 0):
        self.path = Path(path)
        self.step_offset = int(step_offset)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        if any(key.startswith("eval_") for key in logs):
            return
        append_metrics(self.path, state.global_step + self.step_offset, logs)


class _RolloutFlush(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._flush_rollouts(state.global_step)


class SENTTrainer(GRPOTrainer):
    """GRPO with the token-level objective ``args.method`` from ``sent.losses`` (see module docstring)."""

    _tag_names = ["trl", "grpo", "sent"]
    _staging: Path | None = None  # the staging folder while _save_checkpoint runs

    def __init__(self, model, reward_funcs, args: SENTConfig, *pargs, step_offset: int = 0,
                 rollouts_dir: str | Path | None = None, **kwargs):
        """``step_offset``: optimizer steps of earlier curriculum stages (added to recorded rollout steps);
        ``rollouts_dir``: where recorded rollouts go (default ``<output_dir>/rollouts``)."""
        if not isinstance(args, SENTConfig):
            raise ValueError(f"args must be a SENTConfig, got {type(args).__name__}")
        self.loss_settings = args.loss_settings()
        self._loss_fn = get_loss(args.method)
        k3_beta = args.beta
        force_ref = args.needs_reference() and k3_beta == 0.0
        if force_ref:
            args.beta = 1.0  # only TRL's "build ref model + ref logps" switch; the coefficient is loss_settings.beta
        try:
            super().__init__(model, reward_funcs, args, *pargs, **kwargs)
        finally:
            args.beta = k3_beta
        self.beta = 1.0 if args.needs_reference() else 0.0
        self._token_filter = load_token_filter(args.token_filter_fn) if args.token_filter == "content" else None
        self._token_str: dict[int, str] = {}
        self._gen_prompt_ids: list[str] = []
        self.step_offset = int(step_offset)
        self._rollout_rows: list[dict] = []
        self.recorder = None
        if args.record_rollouts_every:
            from sent.rollouts import RolloutRecorder

            meta = {"method": args.method, "seed": args.seed, "run": args.run_name, "config": args.to_dict()}
            self.recorder = RolloutRecorder(Path(rollouts_dir or Path(args.output_dir) / ROLLOUTS), metadata=meta,
                                            max_rows=args.record_max_rows)
        self.add_callback(_RolloutFlush(self))

    # ------------------------------------------------------------------ generation: per-row tensors
    def _generate_single_turn(self, *args, **kwargs):
        """TRL's transformers-generate path, with :mod:`sent.fast_decode`'s lean loop standing in for
        ``model.generate`` on the models it covers (identical tokens, less time; vLLM and other models unchanged)."""
        from sent import fast_decode

        with fast_decode.installed(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        stages = [int(row.get("stage", 1)) for row in inputs]
        output = super()._generate_and_score_completions(inputs)
        device = output["advantages"].device
        n_local = len(inputs)
        g = self.num_generations if mode == "train" else self.num_generations_eval
        first = self.accelerator.process_index * n_local
        self._gen_prompt_ids = [str(row.get("prompt_id", f"row-{first + i}")) for i, row in enumerate(inputs)]
        output["sent_row"] = torch.arange(n_local, device=device)
        output["sent_sample_id"] = (torch.arange(first, first + n_local, device=device) % g).to(torch.int32)
        output["sent_stage"] = torch.tensor(stages, device=device, dtype=torch.int32)
        output["sent_reward"] = self._local_rewards(n_local, device)
        if self._token_filter is not None:
            output["sent_eligible"] = self._eligible(output["completion_ids"])
        return output

    def _local_rewards(self, n_local: int, device) -> torch.Tensor:
        """Weighted reward sum per local row, read back from TRL's gathered reward log (NaN = unscorable)."""
        n_global = n_local * self.accelerator.num_processes
        per_func = [list(self._logs["rewards"][name])[-n_global:] for name in self.reward_func_names]
        table = torch.tensor(per_func, dtype=torch.float32).T  # (n_global, n_funcs)
        weights = self.reward_weights.float().cpu()
        rewards = (table * weights).nansum(dim=1)
        rewards[torch.isnan(table).all(dim=1)] = float("nan")
        first = self.accelerator.process_index * n_local
        return rewards[first:first + n_local].to(device)

    def _token_strings(self, ids) -> list[str]:
        out = []
        for i in ids:
            if i not in self._token_str:
                self._token_str[i] = self.processing_class.decode([i])
            out.append(self._token_str[i])
        return out

    def _eligible(self, completion_ids: torch.Tensor) -> torch.Tensor:
        rows = [self._token_filter(self._token_strings(ids)) for ids in completion_ids.tolist()]
        return torch.tensor(rows, dtype=torch.bool, device=completion_ids.device)  # (B, T)

    # ------------------------------------------------------------------ loss
    def _compute_loss(self, model, inputs):
        mode = "train" if self.model.training else "eval"
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
        mask = mask.bool()  # (B, T)
        mm = {key: inputs.get(key) for key in _MM_KEYS}
        logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled, **mm)  # (B, T), (B, T), scalar | None
        old = inputs.get("old_per_token_logps")
        loss_in = LossInputs(
            logp=logps, old_logp=logps.detach() if old is None else old, ref_logp=inputs.get("ref_per_token_logps"),
            entropy=entropies, advantages=inputs["advantages"], mask=mask, eligible=inputs.get("sent_eligible"),
            generator=self._loss_generator(logps.device))
        rows = slice(None)
        if self.args.gate_scope == "global" and self.accelerator.num_processes > 1:
            loss_in, rows = self._gather_inputs(loss_in)
        out = self._loss_fn(loss_in, self.loss_settings)
        per_token_loss = out.per_token_loss[rows]
        if "importance_sampling_ratio" in inputs:  # vLLM sampler correction; TRL applies it before the KL term
            per_token_loss = per_token_loss * inputs["importance_sampling_ratio"]
        per_token_loss = per_token_loss[:, : mask.size(1)]
        loss, _ = aggregate_loss(
            per_token_loss, mask, self.loss_type, training=mode == "train",
            grad_accum=self.current_gradient_accumulation_steps, num_items_in_batch=inputs.get("num_items_in_batch"),
            num_processes=self.accelerator.num_processes, steps_per_generation=self.args.steps_per_generation,
            max_completion_length=self.max_completion_length)
        if self.aux_loss_enabled:
            accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.router_aux_loss_coef * aux_loss / accum
        with torch.no_grad():
            gates = out.gates
            if gates is None:
                gates = self._gates_for_logging(loss_in)
            gates = type(gates)(*(g[rows][:, : mask.size(1)] for g in gates))
            self._log_step_metrics(mode, inputs, loss_in, rows, logps, entropies, mask, gates, out.metrics)
            if mode == "train" and self._recording():
                self._collect_rollouts(inputs, logps, entropies, mask, gates)
        return loss

    def _loss_generator(self, device) -> torch.Generator:
        """Per micro-step generator (clip_cov's random picks): reproducible after resume, no global RNG consumed."""
        g = torch.Generator(device=device)
        g.manual_seed(self.args.seed * 1_000_003 + self._step)
        return g

    def _gates_for_logging(self, li):
        """The SENT sets of a method that has no token KL (for the entropy/share/cov metrics and rollouts).

        β is 0 everywhere: these methods put no per-token KL on any token, so beta/* must log 0, not the SENT
        coefficients the sets would get.
        """
        s = self.loss_settings
        gates = compute_gates(
            li.entropy.detach(), li.logp.detach(), li.advantages, li.mask, low_entropy_ratio=s.low_entropy_ratio,
            beta_low=s.beta_low, beta_high=s.beta_high, high_cov_threshold=s.high_cov_threshold,
            high_cov_ratio=s.high_cov_ratio, center=s.cov_center, eligible=li.eligible)
        return gates._replace(beta=torch.zeros_like(gates.beta))

    def _gather_inputs(self, li):
        """``gate_scope=global``: all ranks' micro-batches in one LossInputs; only this rank's rows keep gradients."""
        acc = self.accelerator
        b, t = li.mask.shape
        t_max = int(acc.gather(torch.tensor([t], device=li.mask.device)).max())
        rank = acc.process_index

        def spread(x, value=0.0):
            if x is None:
                return None
            is_bool = x.dtype == torch.bool
            own = x.float() if is_bool else x
            if own.dim() == 2:
                own = F.pad(own, (0, t_max - t), value=value)
            full = acc.gather(own.detach().contiguous())
            full = torch.cat([full[: rank * b], own, full[(rank + 1) * b:]])
            return full.bool() if is_bool else full

        gathered = LossInputs(
            logp=spread(li.logp), old_logp=spread(li.old_logp), ref_logp=spread(li.ref_logp),
            entropy=spread(li.entropy), advantages=spread(li.advantages), mask=spread(li.mask),
            eligible=spread(li.eligible), generator=li.generator)
        return gathered, slice(rank * b, (rank + 1) * b)

    def _log_step_metrics(self, mode, inputs, li, rows, logps, entropies, mask, gates, method_metrics) -> None:
        """Append this micro-step's metrics, reduced over ranks. ``li`` is what the gates saw (all ranks' rows under
        ``gate_scope=global``, this rank's are ``li.<field>[rows]``); ``gate/tokens_seen`` = its valid tokens, mean
        over ranks."""
        metrics = self._metrics[mode]
        fmask = mask.float()
        g_sums, cov_max = gate_sums(gates, entropies, mask)  # this rank's rows
        ent = entropies.detach().float()
        old_gap = (logps.detach() - li.old_logp[rows][:, : mask.size(1)]).abs()  # this rank's rows, (B, T)
        sums = torch.stack([
            (ent * fmask).sum(), (old_gap * fmask).sum(), fmask.sum(-1).mean() if mask.numel() else fmask.sum(),
            li.mask.sum(),  # tokens the gates were computed over: this micro-batch, or all ranks' (gate_scope=global)
        ])
        ref = inputs.get("ref_per_token_logps")
        if ref is not None:
            d = ref - logps.detach()
            kl_sum = ((torch.exp(d) - d - 1) * fmask).sum()
        else:
            kl_sum = torch.tensor(float("nan"), device=fmask.device)
        sums = self.accelerator.reduce(torch.cat([g_sums, sums, kl_sum.view(1)]), reduction="sum")
        k = len(g_sums)
        gate = gate_metrics(sums[:k], self.accelerator.gather(cov_max.view(1)).max(), zero_on_empty=True)
        ent_sum, old_gap_sum, length_sum, seen_sum, kl_sum = sums[k:]
        n = sums[0].clamp(min=1)  # valid tokens of all ranks
        values = {
            "entropy/all": ent_sum / n, **{key: gate[key] for key in (
                "entropy/low", "entropy/high_cov", "share/low", "share/high_cov", "beta/mean", "beta/mean_low")},
            "kl/old": old_gap_sum / n, "cov/mean": gate["cov/mean"], "cov/std": gate["cov/std"],
            "length/mean": length_sum / self.accelerator.num_processes, "kl/ref": kl_sum / n,
            "gate/tokens_seen": seen_sum / self.accelerator.num_processes, "cov/max": gate["cov/max"],
        }
        for key, value in values.items():
            metrics[key].append(float(value))
        if ref is not None:
            metrics["kl"].append(float(values["kl/ref"]))
        metrics["entropy"].append(float(values["entropy/all"]))
        metrics["stage"].append(float(self.accelerator.gather(inputs["sent_stage"].max().view(1)).max()))
        for key, value in (method_metrics or {}).items():  # method-specific extras (local to this rank)
            if key not in values:
                metrics[key].append(float(value))

    # ------------------------------------------------------------------ rollout recording
    def _recording(self) -> bool:
        every = self.args.record_rollouts_every
        return bool(every) and (self.state.global_step + 1) % every == 0

    def _collect_rollouts(self, inputs, logps, entropies, mask, gates) -> None:
        step = self.state.global_step + 1 + self.step_offset
        ids = inputs["completion_ids"]
        for b in range(ids.size(0)):
            valid = mask[b]
            token_ids = ids[b][valid].tolist()
            self._rollout_rows.append({
                "step": step, "prompt_id": self._gen_prompt_ids[int(inputs["sent_row"][b])],
                "sample_id": int(inputs["sent_sample_id"][b]), "stage": int(inputs["sent_stage"][b]),
                "reward": float(inputs["sent_reward"][b]), "advantage": float(inputs["advantages"][b].float().mean()),
                "token_ids": token_ids, "tokens": self._token_strings(token_ids),
                "logp": logps[b][valid].float().tolist(), "entropy": entropies[b][valid].float().tolist(),
                "covariance": gates.covariance[b][valid].float().tolist(),
                "low_entropy": gates.low_entropy[b][valid].tolist(), "high_cov": gates.high_cov[b][valid].tolist(),
                "beta": gates.beta[b][valid].float().tolist(),
            })

    def _flush_rollouts(self, step: int) -> None:
        if self.recorder is None or not self.args.record_rollouts_every or step % self.args.record_rollouts_every:
            self._rollout_rows = []
            return
        from accelerate.utils import gather_object

        rows = gather_object(self._rollout_rows) if self.accelerator.num_processes > 1 else self._rollout_rows
        self._rollout_rows = []
        if self.accelerator.is_main_process and rows:
            self.recorder.write_step(step + self.step_offset, rows)

    # ------------------------------------------------------------------ checkpoints: complete or invisible
    def _get_output_dir(self, trial) -> str:
        """HF's ``_save_checkpoint`` writes ``<this>/checkpoint-<step>``: the staging folder while we save one."""
        if self._staging is not None:
            return str(self._staging)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        """TRL's checkpoint into ``.tmp-checkpoint-<step>/``, renamed to ``checkpoint-<step>/`` when every rank has
        written its part (``sent.checkpoints.publish_checkpoint``, which then applies ``save_total_limit``). On any
        error the staging folder is deleted; a full disk becomes ``DiskFullError`` naming the checkpoint."""
        import shutil

        from sent.checkpoints import TRAINER_STATE, checkpoint_folder, publish_checkpoint, staging_folder
        from sent.io import disk_full_names

        run_dir = Path(super()._get_output_dir(trial))
        step = self.state.global_step
        staging, dest = staging_folder(run_dir, step), checkpoint_folder(run_dir, step)
        self._staging = staging
        try:
            with disk_full_names(dest):
                super()._save_checkpoint(model, trial)
                best = self.state.best_model_checkpoint
                if self.args.should_save and best and Path(best).parent == staging:  # HF saw the staging path
                    self.state.best_model_checkpoint = str(dest)
                    self.state.save_to_json(str(staging / dest.name / TRAINER_STATE))
        except BaseException:
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()  # every rank's rng_state_<rank>.pth is in the staging folder
        if self.args.should_save:
            with disk_full_names(dest):
                publish_checkpoint(staging, run_dir, step, self.args.save_total_limit,
                                   self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()
