"""TRL's loss aggregation for the per-token losses of ``sent.losses``: one rule per ``loss_type``.

The registry's functions return the per-token loss (B, T); ``SENTTrainer._compute_loss`` turns it into the
micro-step's scalar loss with :func:`aggregate_loss`, a copy of TRL 1.16's normalisers, so that ``method: grpo``
reproduces stock ``GRPOTrainer`` (tests/test_trainer.py).
"""

from __future__ import annotations


__all__ = ["aggregate_loss"]


def aggregate_loss(per_token_loss, mask, loss_type, *, training, grad_accum, num_items_in_batch=None,
                   num_processes=1, steps_per_generation=1, max_completion_length=None):
    """TRL 1.16 ``_compute_loss`` aggregation (grpo_trainer.py L3152-3185), returns ``(loss, policy_loss)``.

    grpo: mean over sequences of the per-sequence token mean, / grad_accum. bnpo: token mean of the micro-batch,
    / grad_accum. dr_grpo: sum / (B * max_completion_length), / grad_accum. dapo: sum / (active tokens of the
    generation batch / num_processes * grad_accum / steps_per_generation). In eval nothing is accumulated.
    ``per_token_loss`` (B, T) float, ``mask`` (B, T) bool or 0/1.
    """
    mask = mask.to(per_token_loss.dtype)
    accum = grad_accum if training else 1.0
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    elif loss_type == "dapo":
        normalizer = num_items_in_batch.clamp(min=1.0) / num_processes
        if training:
            normalizer = normalizer * grad_accum / steps_per_generation
        loss = (per_token_loss * mask).sum() / normalizer
        return loss, loss.detach()
    else:
        raise ValueError(f"loss_type={loss_type!r} is not supported; use grpo, bnpo, dr_grpo or dapo")
    return loss / accum, loss.detach()
