"""Re-scoring throughput of `sent rollouts import`: the batched token-budget re-scorer vs one sequence at a time.

:func:`sent.rollout_scoring.score_sequences` (left-padded batches of at most ``--token-budget`` padded tokens,
longest first, the softmax in chunks) against a naive loop that runs one ``prompt + response`` per forward. Both
compute fp32 logp and entropy of ``softmax(logits / T)`` at every response token and run the LM head on the response
positions only (``logits_to_keep``), so the ratio is what batching buys. They run in this process on the same random
sequences, interleaved (``--repeats``, median), after a warm-up. Printed: scored response tokens per second of each,
the ratio batched / naive, and the largest difference between their values (fp32 padding effects only).

Two random-init models (weights do not change the cost):
* ``toy``: the toy base's architecture (``sent.toy.build_tokenizer`` / ``build_model``: Llama, d=96, 4 layers, MLP
  512, its word-level vocabulary), prompts of 16-48 and responses of 8-96 tokens (its sampling limit);
* ``qwen2``: a Qwen2 (the paper models' architecture) with hidden 512, 8 layers, 8 heads / 2 KV heads, MLP 2048 and
  Qwen2.5's vocabulary of 151,936 rows, so the LM head and the softmax weigh as in a real import; prompts of 32-128
  and responses of 64-256 tokens.

Run: ``python benchmarks/bench_rescore.py [--threads 2] [--models toy qwen2] [--repeats 2] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sent.rollout_scoring import score_sequences, vocab_size


#: name -> (number of sequences, prompt length range, response length range)
WORKLOADS = {"toy": (256, (16, 48), (8, 96)), "qwen2": (24, (32, 128), (64, 256))}


def build(name: str):
    """A random-init fp32 model in eval mode."""
    torch.manual_seed(0)
    if name == "toy":
        from sent import toy

        return toy.build_model(toy.build_tokenizer(), toy.ToyModelConfig(), seed=0).eval()
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=151_936, hidden_size=512, intermediate_size=2048, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    return Qwen2ForCausalLM(config).eval()


def sequences(name: str, vocab: int, n: int | None, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    count, (p_lo, p_hi), (c_lo, c_hi) = WORKLOADS[name]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n or count):
        p, c = int(rng.integers(p_lo, p_hi + 1)), int(rng.integers(c_lo, c_hi + 1))
        out.append((rng.integers(0, vocab, p).tolist(), rng.integers(0, vocab, c).tolist()))
    return out


def naive(model, items, temperature: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """One forward per sequence: no padding, no batching."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for p, c in items:
            ids = torch.tensor([p + c], device=device)
            logits = model(input_ids=ids, logits_to_keep=len(c) + 1).logits[0, :-1].float() / temperature  # (C, V)
            lsm = torch.log_softmax(logits, dim=-1)
            logp = lsm.gather(-1, ids[0, len(p):, None]).squeeze(-1)
            ent = -(lsm.exp() * lsm).sum(-1)
            out.append((logp.cpu().numpy(), ent.cpu().numpy()))
    return out


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, res


def run(name: str, args) -> None:
    model = build(name).to(args.device)
    vocab = vocab_size(model)
    items = sequences(name, vocab, args.n)
    n_resp = sum(len(c) for _, c in items)
    n_all = n_resp + sum(len(p) for p, _ in items)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"[{name}] {params:.1f}M parameters, vocabulary {vocab:,}; {len(items)} sequences, {n_all:,} tokens "
          f"({n_resp:,} response tokens scored), temperature {args.temperature}, token budget {args.token_budget}")
    batched = lambda: score_sequences(model, items, temperature=args.temperature,  # noqa: E731
                                      token_budget=args.token_budget, progress=False)
    one_by_one = lambda: naive(model, items, args.temperature)  # noqa: E731
    score_sequences(model, items[:4], temperature=args.temperature, progress=False)  # warm-up
    naive(model, items[:4], args.temperature)
    times = {"batched": [], "naive": []}
    for _ in range(args.repeats):  # interleaved: host-load drift hits both alike
        t, res_b = timed(batched, args.device)
        times["batched"].append(t)
        t, res_n = timed(one_by_one, args.device)
        times["naive"].append(t)
    diff = max(max(float(np.abs(a - b).max()), float(np.abs(e - f).max())) for (a, e), (b, f) in zip(res_b, res_n))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in ("batched", "naive"):
        print(f"  {k:8s} {med[k]:7.2f} s  {n_resp / med[k]:9,.0f} response tokens/s  "
              f"({n_all / med[k]:,.0f} tokens/s incl. prompts; median of {args.repeats})")
    print(f"  speed-up batched / naive: {med['naive'] / med['batched']:.2f}x; largest |logp or entropy difference| "
          f"{diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", choices=sorted(WORKLOADS), default=["toy", "qwen2"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n", type=int, default=None, help="number of sequences (default: per model, see WORKLOADS)")
    ap.add_argument("--token-budget", type=int, default=8192, help="padded tokens per batch (the importer's default)")
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} threads"
    print(f"device: {device}")
    for name in args.models:
        run(name, args)


if __name__ == "__main__":
    main()
