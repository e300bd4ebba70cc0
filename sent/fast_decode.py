"""A lean sampling loop for small Llama models on the CPU: the same tokens as ``model.generate``, without its overhead.

Why: on the cpu profile's 0.8M-parameter toy Llama, ``transformers``' ``generate`` spends about 10 ms per decode
step on 64 sequences, almost all of it per-step Python (cache objects, mask building, input preparation), not
arithmetic. Generation was 36% of a training run and most of an evaluation (docs/BENCHMARKS.md). This loop runs the
same model weights through the same operations, in the same order, with a preallocated key/value buffer and one
boolean key mask, and draws each token with the logits processors ``generate`` itself builds from the generation
config. On the supported models its tokens are identical to ``generate``'s for the same seed
(tests/test_fast_decode.py checks token equality and logits agreement against ``generate``).

What it supports (:func:`supports`): ``LlamaForCausalLM`` with default RoPE, SiLU MLP, no bias, no tensor
parallel slicing, sdpa or eager attention; sampling with temperature, top-k and top-p only. Anything else (another
architecture, repetition penalty, min-p, suppressed tokens, DeepSpeed-wrapped or quantised weights) goes to
``model.generate`` unchanged, so this is a speed path, never a behaviour switch. Set ``SENT_FAST_DECODE=0`` to
force ``generate`` everywhere.

Left-padded prompts are handled as ``generate`` handles them: position ids are ``cumsum(mask) - 1`` (0 on padding),
padded keys are masked, and rows that finished keep being fed the pad token, so every step draws one token per row
and the random stream advances exactly as in ``generate``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.nn.functional as F


_ALLOWED_PROCESSORS = ("TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper")


def enabled() -> bool:
    """False when ``SENT_FAST_DECODE=0`` (use ``model.generate`` everywhere)."""
    return os.environ.get("SENT_FAST_DECODE", "1").strip() not in ("0", "false", "off", "no")


def supports(model) -> bool:
    """True when :func:`generate` reproduces ``model.generate`` for this model (architecture checks only)."""
    if not enabled() or type(model).__name__ != "LlamaForCausalLM":
        return False
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    checks = (
        rope.get("rope_type", "default") == "default",
        getattr(cfg, "hidden_act", None) == "silu",
        not getattr(cfg, "attention_bias", False),
        not getattr(cfg, "mlp_bias", False),
        getattr(cfg, "pretraining_tp", 1) == 1,
        getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager"),
        not getattr(model, "is_quantized", False),
        getattr(model, "hf_quantizer", None) is None,
    )
    if not all(checks):
        return False
    try:
        return all(p.device.type in ("cpu", "cuda") and p.numel() > 0 for p in model.parameters())
    except Exception:  # noqa: BLE001 - sharded or meta parameters: use generate
        return False


def _processors(model, input_ids, generation_config, kwargs):
    """The resolved generation config and logits processors ``generate`` would use, or None if unsupported."""
    from transformers.generation.logits_process import LogitsProcessorList

    gen_config, model_kwargs = model._prepare_generation_config(generation_config, **kwargs)
    if not gen_config.do_sample or (gen_config.num_beams or 1) != 1 or gen_config.num_return_sequences not in (None, 1):
        return None
    if getattr(gen_config, "assistant_model", None) is not None or gen_config.return_dict_in_generate:
        return None
    processors = model._get_logits_processor(
        generation_config=gen_config, input_ids_seq_length=input_ids.shape[1], encoder_input_ids=input_ids,
        prefix_allowed_tokens_fn=None, logits_processor=LogitsProcessorList(), device=input_ids.device,
        model_kwargs=model_kwargs,
    )
    if any(type(p).__name__ not in _ALLOWED_PROCESSORS for p in processors):
        return None
    return gen_config, processors


def _eos_list(gen_config) -> list[int]:
    eos = gen_config.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


class _Weights:
    """The model's tensors, looked up once per call (no copies: updated weights are seen on the next call)."""

    def __init__(self, model):
        inner = model.model
        cfg = model.config
        self.embed = inner.embed_tokens.weight
        self.lm_head = model.lm_head.weight
        self.norm_w, self.norm_eps = inner.norm.weight, inner.norm.variance_epsilon
        self.layers = []
        for layer in inner.layers[: cfg.num_hidden_layers]:
            att, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                att.q_proj.weight, att.k_proj.weight, att.v_proj.weight, att.o_proj.weight,
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight,
            ))
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq
        self.rope_scale = rotary.attention_scaling


def _rms(x, w, eps):
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dtype)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _forward(W: _Weights, ids, positions, k_buf, v_buf, key_mask, start: int):
    """Logits of the last position for ``ids`` (B, S) placed at buffer slots [start, start + S).

    ``key_mask`` (B, 1, S, L) boolean, True where a query may attend; ``L = start + S``.
    """
    B, S = ids.shape
    x = F.embedding(ids, W.embed)
    freqs = positions[..., None].float() * W.inv_freq.to(device=x.device, dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = (emb.cos() * W.rope_scale).to(x.dtype).unsqueeze(1)
    sin = (emb.sin() * W.rope_scale).to(x.dtype).unsqueeze(1)
    end = start + S
    groups = W.n_heads // W.n_kv
    for li, (n1, e1, wq, wk, wv, wo, n2, e2, wg, wu, wd) in enumerate(W.layers):
        h = _rms(x, n1, e1)
        q = F.linear(h, wq).view(B, S, -1, W.head_dim).transpose(1, 2)
        k = F.linear(h, wk).view(B, S, -1, W.head_dim).transpose(1, 2)
        v = F.linear(h, wv).view(B, S, -1, W.head_dim).transpose(1, 2)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        k_buf[li][:, :, start:end] = k
        v_buf[li][:, :, start:end] = v
        keys, values = k_buf[li][:, :, :end], v_buf[li][:, :, :end]
        if groups > 1:
            keys = keys.repeat_interleave(groups, dim=1)
            values = values.repeat_interleave(groups, dim=1)
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=key_mask, dropout_p=0.0, scale=W.scaling)
        a = a.transpose(1, 2).reshape(B, S, -1)
        x = x + F.linear(a, wo)
        h = _rms(x, n2, e2)
        x = x + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
    x = _rms(x[:, -1:], W.norm_w, W.norm_eps)
    return F.linear(x, W.lm_head)[:, -1].to(copy=True, dtype=torch.float32)


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, generation_config=None,
             **kwargs):
    """``model.generate(input_ids, attention_mask, generation_config, **kwargs)``, on the lean path when possible.

    Returns the same ``(B, P + T)`` tensor of prompt and sampled ids as ``generate``; falls back to ``generate``
    for models or settings the lean path does not cover.
    """
    def fallback():
        # the class's method: ``model.generate`` may be this function, installed by :func:`installed`
        return type(model).generate(model, input_ids=input_ids, attention_mask=attention_mask,
                                    generation_config=generation_config, **kwargs)

    if not supports(model) or input_ids.dim() != 2:
        return fallback()
    resolved = _processors(model, input_ids, generation_config, kwargs)
    if resolved is None:
        return fallback()
    gen_config, processors = resolved
    B, P = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    max_new = gen_config.max_new_tokens if gen_config.max_new_tokens is not None else gen_config.max_length - P
    if max_new is None or max_new < 1:
        return fallback()
    eos = torch.tensor(_eos_list(gen_config), device=device, dtype=torch.long)
    pad = gen_config.pad_token_id
    if pad is None:
        pad = int(eos[0]) if len(eos) else 0
    W = _Weights(model)
    dtype = W.embed.dtype
    L = P + max_new
    k_buf = [torch.zeros(B, W.n_kv, L, W.head_dim, dtype=dtype, device=device) for _ in W.layers]
    v_buf = [torch.zeros(B, W.n_kv, L, W.head_dim, dtype=dtype, device=device) for _ in W.layers]
    keys_ok = torch.zeros(B, L, dtype=torch.bool, device=device)
    keys_ok[:, :P] = attention_mask.bool()
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(attention_mask == 0, 0)
    causal = torch.ones(P, P, dtype=torch.bool, device=device).tril()
    prefill_mask = (causal[None] & keys_ok[:, None, :P]).unsqueeze(1)  # (B, 1, P, P)
    # A fully padded query row would give NaN in sdpa; generate's mask lets such rows see themselves. Their
    # outputs never reach a sampled token (only the last position, a real prompt token, is read).
    prefill_mask = prefill_mask | torch.eye(P, dtype=torch.bool, device=device)[None, None]
    was_training = model.training
    model.eval()
    try:
        logits = _forward(W, input_ids, positions, k_buf, v_buf, prefill_mask, 0)
        out = torch.empty(B, L, dtype=input_ids.dtype, device=device)
        out[:, :P] = input_ids
        unfinished = torch.ones(B, dtype=torch.long, device=device)
        rows = torch.arange(B, device=device)  # original row of each buffer row
        next_pos = positions[:, -1:] + 1  # (rows, 1)
        probs = torch.full((B, logits.shape[-1]), 1.0 / logits.shape[-1], dtype=torch.float32, device=device)
        t = 0
        while True:
            # Every row draws every step (finished rows from a dummy distribution), so the random stream advances
            # exactly as in generate, which samples all B rows; row i's draw depends only on row i's probabilities.
            scores = processors(out[:, :P + t], logits)  # the allowed processors ignore the ids
            probs[rows] = torch.softmax(scores, dim=-1)
            token = torch.multinomial(probs, num_samples=1).squeeze(1)
            token = token * unfinished + pad * (1 - unfinished)
            out[:, P + t] = token
            keys_ok[:, P + t] = True
            t += 1
            if len(eos):
                unfinished = unfinished * (~torch.isin(token, eos)).long()
            if t >= max_new or unfinished.max() == 0:
                break
            alive = unfinished[rows].bool()
            if alive.sum() * 4 <= 3 * len(rows):  # drop finished rows from the buffers once a quarter has finished
                keep = alive.nonzero().squeeze(1)
                rows, next_pos = rows[keep], next_pos[keep]
                k_buf = [k[keep] for k in k_buf]
                v_buf = [v[keep] for v in v_buf]
                probs[:] = 1.0 / probs.shape[-1]
            logits = _forward(W, token[rows, None], next_pos, k_buf, v_buf, keys_ok[rows, None, None, :P + t],
                              P + t - 1)
            next_pos = next_pos + 1
    finally:
        if was_training:
            model.train()
    return out[:, :P + t]


@contextmanager
def installed(model):
    """Within the block, ``model.generate(...)`` runs :func:`generate` (which falls back to the class's own)."""
    if not supports(model) or "generate" in vars(model):
        yield model
        return

    def lean(input_ids=None, attention_mask=None, generation_config=None, **kwargs):
        return generate(model, input_ids, attention_mask, generation_config, **kwargs)

    model.generate = lean
    try:
        yield model
    finally:
        del model.generate
