"""SENT step time / stock TRL GRPO step time on the tiny random Llama, same process (CPU).

Prints the ratio of median step times for SENTTrainer (method=sent) without and with rollout recording vs
GRPOTrainer (beta > 0, so both compute reference log-probs). Goals: <= 1.05 (off), <= 1.15 (recording on).
Usage: python benchmarks/bench_step.py [--steps 12] [--fast-decode]
       python benchmarks/bench_step.py --device cuda --hidden 1024 --layers 12 --completion-length 256   # GPU
The model is random (word-level vocabulary of ~30 tokens), so completions run to the length limit: the step time is
dominated by generation and the forward/backward passes, as in real runs; the LM head is small, unlike a real one.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _step_times(trainer_cls, config, path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests._tiny import tiny_reward, tiny_rows

    torch.manual_seed(0)
    trainer = trainer_cls(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=tiny_reward, args=config,
                          train_dataset=Dataset.from_list(tiny_rows(256)),
                          processing_class=AutoTokenizer.from_pretrained(path))
    trainer.train()
    times = [h["step_time"] for h in trainer.state.log_history if "step_time" in h]
    return statistics.median(times[2:])  # skip warm-up steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="completions per step (8 per prompt)")
    parser.add_argument("--fast-decode", action="store_true",
                        help="let SENTTrainer sample with sent.fast_decode (stock TRL always uses generate); off by "
                             "default so that the ratio measures the SENT objective, not the sampler")
    args = parser.parse_args()
    import os

    os.environ["SENT_FAST_DECODE"] = "1" if args.fast_decode else "0"
    steps, repeats = args.steps, args.repeats
    torch.set_num_threads(1)
    from trl import GRPOConfig, GRPOTrainer

    from sent.trainer import SENTTrainer
    from sent.trainer_config import SENTConfig
    from tests._tiny import build_tiny_model

    tmp = Path(tempfile.mkdtemp())
    path = build_tiny_model(tmp / "model", hidden=args.hidden, layers=args.layers)
    on_gpu = args.device == "cuda"
    kw = dict(use_cpu=not on_gpu, bf16=on_gpu, report_to=[], max_steps=steps, per_device_train_batch_size=args.batch,
              num_generations=8, max_completion_length=args.completion_length, logging_steps=1, save_strategy="no",
              beta=0.001, seed=0, gradient_checkpointing=False, disable_tqdm=True)
    results = {"stock": [], "off": [], "on": []}
    for r in range(repeats):  # interleaved so host-load drift hits all three alike
        results["stock"].append(_step_times(GRPOTrainer, GRPOConfig(output_dir=str(tmp / f"s{r}"), **kw), path))
        results["off"].append(_step_times(SENTTrainer, SENTConfig(output_dir=str(tmp / f"o{r}"), method="sent", **kw),
                                          path))
        results["on"].append(_step_times(SENTTrainer, SENTConfig(output_dir=str(tmp / f"r{r}"), method="sent",
                                                                 record_rollouts_every=1, **kw), path))
    med = {k: statistics.median(v) for k, v in results.items()}
    device = torch.cuda.get_device_name() if on_gpu else "CPU (1 thread)"
    print(f"device: {device}; model hidden {args.hidden} x {args.layers} layers; {args.batch} completions x "
          f"{args.completion_length} tokens per step")
    print(f"stock TRL GRPO step: {med['stock'] * 1e3:.1f} ms (median of {repeats} runs x {steps - 2} steps)")
    print(f"SENT, recording off: {med['off'] * 1e3:.1f} ms   ratio {med['off'] / med['stock']:.3f} (goal <= 1.05)")
    print(f"SENT, recording on:  {med['on'] * 1e3:.1f} ms   ratio {med['on'] / med['stock']:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
