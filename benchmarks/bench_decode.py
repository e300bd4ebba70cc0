"""Lean decode loop (sent.fast_decode) / transformers ``generate``: time per generation batch, same process (CPU).

Samples the cpu profile's training batch (64 completions: 16 prompts x 4, up to 72 new tokens, temperature 1) and
its evaluation batch with the toy base model, alternating the two samplers with the same seeds, and prints the
median time of each, their ratio, and whether the tokens were identical (they must be).
Usage: python benchmarks/bench_decode.py [--model artifacts/cpu/base] [--repeats 5] [--threads 2]
The model must be a trained toy base (a random model rarely emits EOS, which hides the saving on finished rows);
build one with `sent toy-base --profile cpu --out artifacts/cpu/base`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="artifacts/cpu/base")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=72)
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        sys.exit(f"bench_decode: no model at {args.model}; build it with `sent toy-base --profile cpu --out {args.model}`")
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sent import fast_decode, toy

    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    rows = toy.held_out_rows(args.prompts)[: args.prompts]
    prompts = [toy.TOY_TEMPLATE.format(**r) for r in rows]
    enc = tok([p for p in prompts for _ in range(args.samples)], return_tensors="pt", padding=True,
              add_special_tokens=False)
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens,
              pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id])
    times = {"generate": [], "lean": []}
    same = True
    lengths = []
    for r in range(args.repeats + 1):  # the first round warms up and is not timed
        outs = {}
        for name in ("generate", "lean") if r % 2 == 0 else ("lean", "generate"):
            torch.manual_seed(1000 + r)
            start = time.perf_counter()
            with torch.no_grad():
                if name == "generate":
                    outs[name] = model.generate(**enc, **kw)
                else:
                    outs[name] = fast_decode.generate(model, enc["input_ids"], enc["attention_mask"], None, **kw)
            if r:
                times[name].append(time.perf_counter() - start)
        same &= torch.equal(outs["generate"], outs["lean"])
        completion = outs["lean"][:, enc["input_ids"].shape[1]:]
        lengths.append(float((completion != tok.pad_token_id).sum(1).float().mean()))
    g, lean = statistics.median(times["generate"]), statistics.median(times["lean"])
    print(f"batch {enc['input_ids'].shape[0]} x up to {args.max_new_tokens} new tokens, mean completion "
          f"{statistics.mean(lengths):.1f} tokens, {args.threads} threads")
    print(f"generate {g * 1000:.0f} ms, lean {lean * 1000:.0f} ms per batch (median of {args.repeats})")
    print(f"lean / generate time ratio: {lean / g:.2f} ({g / lean:.2f}x faster); identical tokens: {same}")
    if not same:
        sys.exit("bench_decode: the lean loop drew different tokens from generate")


if __name__ == "__main__":
    main()
