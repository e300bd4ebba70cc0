"""Ordering puzzles: the non-math domain, answered with a single word in ``\\boxed{}``.

"Ann is taller than Bo. Cy is shorter than Bo. Who is the shortest?" The facts are the adjacent
pairs of a hidden order, shuffled and stated in either direction; the chain of thought rebuilds
the order and reads off the asked position. Level L has L + 1 people (2..7), so the number of
links to chain grows with the level; from level 4 the question can ask for a middle position
("second tallest"). Answers are names, so two answers are equivalent only if their normalised
strings are equal (the SE clustering for this domain is ``equivalence="exact"``).

Correctness-neutral diversity, as in :mod:`sent.data.synthetic`: the order may be written from
either end (both are valid), as a sentence chain, a list or with ``>`` signs, with several
openers and endings.
"""

from __future__ import annotations

import random

import pandas as pd

from sent.data.synthetic import LEVELS, generate_problems


PEOPLE = ("Ann", "Bo", "Cy", "Di", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo", "Kim", "Lou")
# attribute -> (more, less, most, least)
ATTRIBUTES = (("taller", "shorter", "tallest", "shortest"), ("older", "younger", "oldest", "youngest"),
              ("faster", "slower", "fastest", "slowest"), ("heavier", "lighter", "heaviest", "lightest"))
ORDINALS = ("", "second ", "third ")
OPENERS = ("Putting them in order,", "In order,", "Lining them up,", "Sorting them,", "")
ENDINGS = ("So the {q} is \\boxed{{{a}}}.", "The {q} is \\boxed{{{a}}}.", "Answer: \\boxed{{{a}}}.")


def _question(level: int, n: int, rng: random.Random) -> tuple[int, str, bool]:
    """Pick the asked position: ``(rank from the top, ordinal prefix, asks for the 'most' end)``."""
    ordinal = 0
    if level >= 4 and rng.random() < 0.5:
        ordinal = rng.randint(1, min(2, n - 2))
    most = rng.random() < 0.5
    rank = ordinal if most else n - 1 - ordinal
    return rank, ORDINALS[ordinal], most


def make_puzzle(level: int, rng: random.Random) -> dict:
    """One puzzle row (problem, answer, level, solution, n_steps, key)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    n = level + 1
    order = rng.sample(PEOPLE, n)  # order[0] has the most of the attribute
    more, less, most_w, least_w = rng.choice(ATTRIBUTES)
    facts = []
    for a, b in zip(order, order[1:]):
        facts.append(f"{a} is {more} than {b}." if rng.random() < 0.5 else f"{b} is {less} than {a}.")
    rng.shuffle(facts)
    rank, ordinal, most = _question(level, n, rng)
    q = ordinal + (most_w if most else least_w)
    problem = " ".join(facts) + f" Who is the {q}?"
    answer = order[rank]
    return {"problem": problem, "answer": answer, "level": level,
            "solution": solution_text(order, (more, less, most_w, least_w), q, answer, rng),
            "n_steps": n - 1, "key": problem}


def solution_text(order: list[str], words: tuple[str, str, str, str], q: str, answer: str,
                  rng: random.Random) -> str:
    """A sampled chain of thought: rebuild the order from either end, then read off the answer."""
    more, less, most_w, least_w = words
    descending = rng.random() < 0.5
    seq, rel = (order, more) if descending else (order[::-1], less)
    style = rng.randrange(3)
    if style == 0:  # sentence chain
        body = f"{seq[0]} is {rel} than {seq[1]}" + "".join(f", who is {rel} than {p}" for p in seq[2:]) + "."
    elif style == 1:  # list
        ends = (most_w, least_w) if descending else (least_w, most_w)
        body = f"from {ends[0]} to {ends[1]}: " + ", ".join(seq) + "."
    else:  # signs
        body = (" > " if descending else " < ").join(seq) + "."
    opener = rng.choice(OPENERS)
    first = f"{opener} {body}" if opener else body[0].upper() + body[1:]
    return first + " " + rng.choice(ENDINGS).format(q=q, a=answer)


def make_relation_problems(n: int, split: str = "train", levels=LEVELS, seed: int = 0,
                           suite: str | None = None) -> pd.DataFrame:
    """``n`` ordering puzzles in the common schema (domain ``relations``, + ``solution``, ``n_steps``, ``key``).

    Deterministic in ``(n, split, levels, seed)``; train and test are split by a hash of the problem text.
    """
    return generate_problems(n, split, levels, seed, make_puzzle, lambda r: r["key"], "relations", suite)


def vocabulary_texts() -> list[str]:
    """Every literal fragment the puzzle generator can emit (for building the toy tokenizer)."""
    texts = list(PEOPLE) + [w for ws in ATTRIBUTES for w in ws] + [o.strip() for o in ORDINALS if o]
    texts += list(OPENERS) + [e.format(q="x", a="x") for e in ENDINGS]
    texts += ["is than . , who is Who the ? from to : > < So The Answer"]
    texts += [o[0].lower() + o[1:] for o in OPENERS if o] + ["From"]
    return texts
