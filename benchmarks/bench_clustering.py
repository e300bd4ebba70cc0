"""Benchmark: parse-once canonicalised SE clustering (``score_dataset``) vs naive pairwise math-verify.

Scale: DAPO-Math-17k, 17,000 prompts x 8 sampled answers. Answers are synthetic but realistic: integers, fractions
in several forms (``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``, ``0.75``, ``\\frac{6}{8}``), decimals, LaTeX expressions
from parameterised families (roots, pi, percentages, polynomials, intervals, sets), near-miss decimals (``0.333``), and garbage (no box, empty box,
words, broken LaTeX, 300-character strings).

Naive baseline: Farquhar-style greedy clustering where every comparison parses both answers afresh and calls
``verify`` both ways (what one writes first). It is timed on a subsample in this process and EXTRAPOLATED to the full
set, then divided by 2 as if perfectly parallel on 2 processes (generous to the baseline).

    python benchmarks/bench_clustering.py [--prompts 17000] [--naive-prompts 300] [--num-proc 2]
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import time

import pandas as pd

from sent.answers import extract_answer
from sent.semantic_entropy import cluster_answers, greedy_clusters, score_dataset


def _forms(num: int, den: int, rng: random.Random) -> list[str]:
    """Several spellings of num/den."""
    if den == 1:
        return [str(num), f"{num}.0", f"\\text{{{num}}}", f"{num}"]
    k = rng.randint(2, 4)
    return [f"{num}/{den}", f"\\frac{{{num}}}{{{den}}}", f"\\dfrac{{{num}}}{{{den}}}",
            f"\\frac{{{num * k}}}{{{den * k}}}", f"{num / den:.6g}" if (num / den * 1e6) % 1 == 0 else f"{num}/{den}"]


def _expression(rng: random.Random) -> str:
    """A LaTeX answer drawn from parameterised families, so that strings rarely repeat across prompts."""
    a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
    return rng.choice([f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"\\frac{{\\pi}}{{{a}}}", f"\\pi/{a}",
                       f"{a}\\%", f"0.0{a}", f"x^2+{a}", f"x^{{2}}+{a}", f"({a},{a + b})", f"[0,{a})",
                       f"\\{{{a},{b}\\}}", f"e^{{{a}}}", "\\infty", f"{a}\\pi", f"-\\frac{{{a}}}{{{a + b}}}",
                       f"{a}x+{b}", f"\\frac{{{a}}}{{\\sqrt{{{b}}}}}", f"\\frac{{{a}\\sqrt{{{b}}}}}{{{b}}}"])
_GARBAGE = [None, "", "blah", "}{", "\\frac{", "see above", "x" * 300, "??", "The answer is", "1/0"]


def make_samples(n_prompts: int, m: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for p in range(n_prompts):
        kind = rng.random()
        if kind < 0.6:
            num, den = rng.randint(-50, 999), 1
        else:
            den = rng.randint(2, 12)
            num = rng.randint(1, 30)
        wrong = [(num + rng.choice([-2, -1, 1, 2, 10]), den) for _ in range(3)]
        p_correct = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0])
        for j in range(m):
            r = rng.random()
            if r < 0.08:
                ans = rng.choice(_GARBAGE)
            elif r < 0.18:
                ans = _expression(rng)
            elif r < 0.18 + 0.82 * p_correct:
                ans = rng.choice(_forms(num, den, rng))
            else:
                ans = rng.choice(_forms(*rng.choice(wrong), rng))
                if den > 1 and rng.random() < 0.2:
                    ans = f"{num / den:.3f}"  # near-miss decimal: only math-verify can decide
            text = "Let us compute step by step. " * rng.randint(1, 4)
            rows.append((f"dapo-{p:05d}", j, text if ans is None else f"{text}So the answer is \\boxed{{{ans}}}."))
    return pd.DataFrame(rows, columns=["prompt_id", "sample_id", "completion"])


def naive_cluster(answers: list[str | None]) -> list[int]:
    """The library's greedy clustering, but with a fresh parse + bidirectional verify at every comparison.

    Missing answers share one cluster, as in ``cluster_answers(unparsable="shared")``.
    """
    from math_verify import parse, verify

    def same(a, b) -> bool:
        if not a or not b:
            return not a and not b
        pa, pb = parse(f"${a}$"), parse(f"${b}$")
        return bool(pa and pb and verify(pb, pa) and verify(pa, pb))

    return greedy_clusters(list(answers), same)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=17_000)
    ap.add_argument("--naive-prompts", type=int, default=300)
    ap.add_argument("--num-proc", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    samples = make_samples(args.prompts)
    print(f"{args.prompts} prompts x 8 = {len(samples)} completions")

    t0 = time.perf_counter()
    per_prompt, samples_out = score_dataset(samples, equivalence="math", num_proc=args.num_proc)
    fast = time.perf_counter() - t0
    print(f"parse-once score_dataset, {args.num_proc} processes: {fast:.1f} s "
          f"(mean SE {per_prompt['se'].mean():.3f} nats, {per_prompt['n_unparsable'].sum()} unparsable answers)")

    sub = samples[samples["prompt_id"].isin(per_prompt["prompt_id"][: args.naive_prompts])]
    groups = [[extract_answer(c) for c in g["completion"]] for _, g in sub.groupby("prompt_id", sort=False)]
    t0 = time.perf_counter()
    naive_ids = [naive_cluster(answers) for answers in groups]
    naive_sub = time.perf_counter() - t0
    ours = samples_out.set_index(["prompt_id", "sample_id"])["cluster"]
    agree = sum(ids == ours.loc[pid].tolist() for ids, pid in zip(naive_ids, sub["prompt_id"].unique()))
    # math-verify is not transitive on some spellings: \text{923} == 923 == 923.0 but \text{923} != 923.0, so greedy
    # naive clustering splits them; with those spellings rewritten, both methods should give identical partitions
    plain = [[None if a is None else re.sub(r"^(-?\d+)\.0$", r"\1", re.sub(r"\\text\{([^{}]*)\}", r"\1", a))
              for a in answers] for answers in groups]
    agree_plain = sum(naive_cluster(a) == cluster_answers(a) for a in plain)
    naive_full = naive_sub * args.prompts / len(groups)
    naive_par = naive_full / args.num_proc
    print(f"naive pairwise verify, 1 process, {len(groups)} prompts: {naive_sub:.1f} s "
          f"-> EXTRAPOLATED to {args.prompts} prompts: {naive_full:.0f} s (1 process), "
          f"{naive_par:.0f} s if perfectly parallel on {args.num_proc}")
    print(f"identical partitions to naive: {agree}/{len(groups)} subsample prompts; "
          f"{agree_plain}/{len(groups)} with \\text{{N}} and N.0 rewritten (math-verify is not transitive on those)")
    print(f"speed-up vs naive on {args.num_proc} processes (extrapolated): {naive_par / fast:.1f}x; "
          f"vs naive 1 process: {naive_full / fast:.1f}x; goal >= 10x and < 120 s: "
          f"{'MET' if naive_par / fast >= 10 and fast < 120 else 'NOT MET'}")


if __name__ == "__main__":
    main()
