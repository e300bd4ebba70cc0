"""Cost of SENT's token gating: `sent` loss (gates + loss, forward + backward on logp) vs plain `grpo`.

B=64, T=2048 random tensors, ~90% valid tokens, off-policy log-ratios. Prints the median time of each
over several repeats (and the minimum, less sensitive to a shared machine's load) and the ratio sent / grpo (goal <= 1.1), plus the gating alone. Both are measured
in this process, interleaved, so machine load hits them alike. Usage:

    python benchmarks/bench_loss.py [--repeats 15] [--threads 1] [--device cpu]
"""

import argparse
import statistics
import time

import torch

from sent.gating import compute_gates
from sent.losses import LossInputs, LossSettings, get_loss


def make_inputs(B: int, T: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logp = -3 * torch.rand(B, T, generator=g)
    old = logp + 0.2 * (torch.rand(B, T, generator=g) - 0.5)
    ref = logp + 0.3 * torch.randn(B, T, generator=g)
    entropy = torch.rand(B, T, generator=g) * 2
    adv = torch.randn(B, generator=g)
    mask = torch.rand(B, T, generator=g) < 0.9
    return [t.to(device) for t in (logp, old, ref, entropy, adv, mask)]


def step(name, tensors, settings, device):
    logp, old, ref, entropy, adv, mask = tensors
    leaf = logp.clone().requires_grad_()
    out = get_loss(name)(LossInputs(leaf, old, ref, entropy, adv, mask), settings)
    (out.per_token_loss.sum() / mask.sum()).backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gates_only(tensors, settings, device):
    logp, _, _, entropy, adv, mask = tensors
    compute_gates(entropy, logp, adv, mask, low_entropy_ratio=settings.low_entropy_ratio, beta_low=settings.beta_low,
                  beta_high=settings.beta_high, high_cov_ratio=settings.release_kl_cov_ratio)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=64)
    parser.add_argument("--T", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tensors = make_inputs(args.B, args.T, args.device)
    settings = LossSettings(beta=0.001)
    cases = {
        "grpo": lambda: step("grpo", tensors, settings, args.device),
        "sent": lambda: step("sent", tensors, settings, args.device),
        "gates": lambda: gates_only(tensors, settings, args.device),
    }
    for fn in cases.values():  # warm-up
        fn()
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    best = {name: min(v) * 1e3 for name, v in times.items()}
    print(f"B={args.B} T={args.T} device={args.device} threads={args.threads} repeats={args.repeats}")
    for name in cases:
        print(f"  {name:6s} median {med[name]:8.2f} ms   min {best[name]:8.2f} ms")
    print(f"ratio sent / grpo = {med['sent'] / med['grpo']:.2f} (median), {best['sent'] / best['grpo']:.2f} (min)  (goal <= 1.1)")
    print(f"gates alone = {med['gates'] / med['grpo']:.2f} x grpo (median)")


if __name__ == "__main__":
    main()
