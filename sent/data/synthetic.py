"""Synthetic multi-step math word problems with a diverse, short chain of thought.

These problems are the offline stand-in for DAPO-Math-17k (training) and the paper's six math
benchmarks (test). They are built for the ``cpu`` profile's tiny word-level model
(``sent toy-base``), so two things matter more than realism:

* **Correctness-neutral diversity.** ``reference/toy-feasibility.md`` measured that a fixed CoT
  template puts nearly all token entropy on result digits (0.056 nats/token), which leaves a
  low-entropy KL nothing to act on. Every solution here is drawn from several paraphrases per step,
  optional openers and restatements, a valid re-ordering of commuting steps, and several
  equivalent written forms of a fractional answer (``3/4``, ``0.75``, ``6/8``), so a model trained
  on them spreads probability over choices that do not change the answer.
* **Short completions.** Level 6 solutions stay around 60-70 tokens of the toy tokenizer, because
  an RL step costs about 1 s per 64 completions of about 45 tokens on 2 CPU cores.

Difficulty levels 1..6: level L has L reasoning steps (``n_steps == level``); operand sizes grow
with the level, and from level 3 the last step may share the amount equally, which is where
fractions come from. Train and test are disjoint by a hash of the canonical parameters (start
value and the operation sequence; the name and object are cosmetic and not part of the key).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from fractions import Fraction

import pandas as pd


LEVELS = (1, 2, 3, 4, 5, 6)
TEST_FRACTION = 0.15  # share of the canonical-parameter space reserved for test suites

NAMES = (("Tom", "he", "his"), ("Ann", "she", "her"), ("Bo", "he", "his"), ("Cy", "he", "his"),
         ("Eve", "she", "her"), ("Max", "he", "his"), ("Mia", "she", "her"), ("Sam", "he", "his"),
         ("Zoe", "she", "her"), ("Lea", "she", "her"))
COUNT_OBJECTS = ("apples", "pens", "coins", "books", "cards", "marbles", "stamps", "shells")
SHARE_OBJECTS = ("pizzas", "pies", "cakes", "liters of juice", "meters of rope", "kilograms of rice")
SHARE_GROUPS = ("friends", "kids", "boxes", "bags")

# Problem phrasing of each operation; {v} is the operand.
PROBLEM_OPS = {
    "add": ("buys {v} more", "finds {v} more", "gets {v} more"),
    "sub": ("gives away {v}", "loses {v}", "sells {v}"),
    "mul": {2: ("doubles them",), 3: ("triples them",)},
}
# Solution phrasing: x = value before the step, v = operand, y = value after it.
STEP_FORMS = {
    # Both operands stay explicit and in the same order in every form: the phrasing varies, the
    # arithmetic a tiny model must attend to does not (implicit-operand forms halved SFT speed).
    "add": ("{x} plus {v} is {y}.", "{x} + {v} = {y}.", "{x} and {v} more make {y}."),
    "sub": ("{x} minus {v} is {y}.", "{x} - {v} = {y}.", "{x} less {v} leaves {y}."),
    "mul": ("{x} times {v} is {y}.", "{x} * {v} = {y}."),
    "div": ("{x} divided by {v} is {y}.", "{x} / {v} = {y}.", "sharing {x} among {v} gives {y}."),
}
MUL_WORDS = {2: "doubling {x} gives {y}.", 3: "tripling {x} gives {y}."}
FIRST_OPENERS = ("First,", "To start,", "Step one:", "")
NEXT_OPENERS = ("Then", "Next,", "After that,", "Now", "")
RESTATEMENTS = ("{Name} starts with {s} {obj}.", "We begin with {s} {obj}.", "There are {s} {obj} at first.")
ENDINGS = ("So the answer is \\boxed{{{a}}}.", "The answer is \\boxed{{{a}}}.", "Thus we get \\boxed{{{a}}}.",
           "Answer: \\boxed{{{a}}}.")

# level -> (number of add/sub/mul steps when there is no sharing step, max operand, start range)
_LEVEL_SPEC = {1: (20, (2, 40)), 2: (20, (2, 30)), 3: (20, (2, 25)), 4: (25, (5, 30)), 5: (30, (5, 40)),
               6: (40, (5, 50))}


@dataclass(frozen=True)
class MathProblem:
    """Canonical parameters of one problem: start value and a tuple of ``(kind, operand)`` steps."""

    level: int
    start: int
    ops: tuple[tuple[str, int], ...]

    def values(self) -> list[Fraction]:
        """Running values after each step (the last one is the answer)."""
        x, out = Fraction(self.start), []
        for kind, v in self.ops:
            x = {"add": x + v, "sub": x - v, "mul": x * v, "div": x / v}[kind]
            out.append(x)
        return out

    @property
    def answer(self) -> Fraction:
        return self.values()[-1]

    def key(self) -> str:
        return f"{self.start}|" + ";".join(f"{k}{v}" for k, v in self.ops)


def canonical_answer(value: Fraction) -> str:
    """Gold answer string: an integer, or a reduced fraction ``p/q`` (e.g. ``Fraction(6, 8) -> "3/4"``)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def parse_number(text: str) -> Fraction | None:
    """Parse ``"12"``, ``"3/4"``, ``"0.75"`` or ``"-2"`` into a Fraction; ``None`` if it is not a number."""
    text = text.strip().replace(" ", "")
    try:
        if "/" in text:
            p, q = text.split("/", 1)
            return Fraction(int(p), int(q))
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def answer_forms(x: int, k: int) -> list[str]:
    """Equivalent written forms of ``x / k`` as a model might write them.

    >>> answer_forms(6, 8)
    ['3/4', '0.75', '6/8']
    """
    value = Fraction(x, k)
    if value.denominator == 1:
        return [str(value.numerator)]
    forms = [canonical_answer(value)]
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # terminating decimal
        forms.append(_decimal(value))
    if math.gcd(x, k) > 1:
        forms.append(f"{x}/{k}")
    return forms


def _decimal(value: Fraction) -> str:
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest and len(digits) < 6:
        rest *= 10
        d, rest = divmod(rest, value.denominator)
        digits += str(d)
    return f"{whole}.{digits}" if digits else str(whole)


def split_of(key: str) -> str:
    """``"test"`` or ``"train"``: the fixed split of a problem, from a hash of ``"<domain>|<key>"``
    (:data:`TEST_FRACTION` of the keys are test)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if h < TEST_FRACTION else "train"


def sample_problem(level: int, rng: random.Random) -> MathProblem:
    """Draw canonical parameters of a level-``level`` problem (``level`` steps, values stay >= 0)."""
    if level not in _LEVEL_SPEC:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    vmax, (lo, hi) = _LEVEL_SPEC[level]
    share = level >= 3 and rng.random() < 0.7
    n_arith = level - 1 if share else level
    x = rng.randint(lo, hi)
    start, ops = x, []
    for i in range(n_arith):
        r = rng.random()
        if level >= 3 and r < 0.2 and x <= 40 and not any(k == "mul" for k, _ in ops) and i > 0:
            v = rng.choice((2, 3))
            ops.append(("mul", v))
            x *= v
        elif r < 0.6 and x - 1 >= 1:
            v = rng.randint(1, min(vmax, x - 1))
            ops.append(("sub", v))
            x -= v
        else:
            v = rng.randint(1, vmax)
            ops.append(("add", v))
            x += v
    if share:
        k = rng.choice((2, 3, 4, 5, 6, 8, 10) if level >= 5 else (2, 3, 4, 5))
        ops.append(("div", k))
    return MathProblem(level, start, tuple(ops))


def problem_text(p: MathProblem, rng: random.Random) -> tuple[str, dict]:
    """Render the question; returns the text and the cosmetic choices (name, object) used by the solution."""
    name, pron, _ = rng.choice(NAMES)
    share = p.ops[-1][0] == "div"
    obj = rng.choice(SHARE_OBJECTS if share else COUNT_OBJECTS)
    arith = [op for op in p.ops if op[0] != "div"]
    phrases = []
    for kind, v in arith:
        pool = PROBLEM_OPS["mul"][v] if kind == "mul" else PROBLEM_OPS[kind]
        phrases.append(rng.choice(pool).format(v=v))
    text = f"{name} has {p.start} {obj}."
    if phrases:
        listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        text += f" {pron.capitalize()} {listed}."
    if share:
        group = rng.choice(SHARE_GROUPS)
        text += f" Then {pron} shares them equally among {p.ops[-1][1]} {group}. How many {obj} does each get?"
    else:
        text += f" How many {obj} does {pron} have now?"
    return text, {"name": name, "obj": obj}


def _reorder(ops: list[tuple[str, int]], rng: random.Random) -> list[tuple[str, int]]:
    """A valid alternative order: inside each run of add/sub steps, additions first (prob. 0.3).

    Additions commute with subtractions, so the result is unchanged, and doing additions first
    never makes a running value negative.
    """
    if rng.random() >= 0.3:
        return ops
    out, run = [], []
    for op in ops + [("end", 0)]:
        if op[0] in ("add", "sub"):
            run.append(op)
            continue
        out += [o for o in run if o[0] == "add"] + [o for o in run if o[0] == "sub"]
        run = []
        if op[0] != "end":
            out.append(op)
    return out


def solution_text(p: MathProblem, cosmetic: dict, rng: random.Random) -> str:
    """One sampled chain of thought ending in ``\\boxed{answer}`` (see the module docstring)."""
    parts = []
    if rng.random() < 0.3:
        parts.append(rng.choice(RESTATEMENTS).format(Name=cosmetic["name"], s=p.start, obj=cosmetic["obj"]))
    x = Fraction(p.start)
    final = canonical_answer(p.answer)
    for i, (kind, v) in enumerate(_reorder(list(p.ops), rng)):
        if kind == "div":
            y_txt = rng.choice(answer_forms(int(x), v))
            final = y_txt
            y = x / v
        else:
            y = {"add": x + v, "sub": x - v, "mul": x * v}[kind]
            y_txt = str(y)
        forms = STEP_FORMS[kind] + ((MUL_WORDS[v],) if kind == "mul" else ())
        step = rng.choice(forms).format(x=x, v=v, y=y_txt)
        opener = rng.choice(FIRST_OPENERS if i == 0 else NEXT_OPENERS)
        parts.append(f"{opener} {step}" if opener else step[0].upper() + step[1:])
        x = y
    parts.append(rng.choice(ENDINGS).format(a=final))
    return " ".join(parts)


def generate_problems(n: int, split: str, levels, seed: int, make, key_of, domain: str, suite: str | None):
    """Shared loop of the synthetic domains: draw ``make(level, rng)`` until ``n`` distinct problems (by
    ``key_of(row)``) of ``split`` (:func:`split_of`) are found, cycling through ``levels``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    levels = tuple(levels)
    if not levels or any(lv not in LEVELS for lv in levels):
        raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {levels!r}")
    rng = random.Random(f"{domain}-{split}-{seed}")
    rows, seen, tries = [], set(), 0
    while len(rows) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise ValueError(f"could not draw {n} distinct {split} problems from levels {levels}; ask for fewer")
        level = levels[len(rows) % len(levels)]
        row = make(level, rng)
        key = key_of(row)
        if key in seen or split_of(f"{domain}|{key}") != split:
            continue
        seen.add(key)
        prefix = suite if suite else f"{domain}-{split}"
        rows.append({"prompt_id": f"{prefix}-{len(rows):06d}" if not suite else f"{prefix}-{len(rows):03d}",
                     "suite": suite or split, "domain": domain, **row})
    cols = ["prompt_id", "problem", "answer", "suite", "domain", "level", "solution"]
    return pd.DataFrame(rows, columns=cols + [c for c in (rows[0] if rows else {}) if c not in cols])


def _make_math(level: int, rng: random.Random) -> dict:
    p = sample_problem(level, rng)
    text, cosmetic = problem_text(p, rng)
    return {"problem": text, "answer": canonical_answer(p.answer), "level": level,
            "solution": solution_text(p, cosmetic, rng), "n_steps": len(p.ops), "key": p.key()}


def make_math_problems(n: int, split: str = "train", levels=LEVELS, seed: int = 0, suite: str | None = None):
    """``n`` math word problems in the common schema (+ ``solution``, ``n_steps``, ``key``).

    Levels cycle through ``levels`` so every level is equally represented. Deterministic in
    ``(n, split, levels, seed)``; train and test never share canonical parameters.
    """
    return generate_problems(n, split, levels, seed, _make_math, lambda r: r["key"], "math", suite)


def math_solutions(problem_key: str, level: int, n: int, seed: int = 0) -> list[str]:
    """``n`` chains of thought for the same canonical problem (for diversity checks)."""
    start, ops_txt = problem_key.split("|")
    ops = tuple((o.rstrip("0123456789"), int(o[len(o.rstrip("0123456789")):])) for o in ops_txt.split(";"))
    p = MathProblem(level, int(start), ops)
    rng = random.Random(seed)
    cosmetic = {"name": "Tom", "obj": "apples"}
    return [solution_text(p, cosmetic, rng) for _ in range(n)]


def vocabulary_texts() -> list[str]:
    """Every literal fragment the math generator can emit (for building the toy tokenizer)."""
    texts = [n for n, _, _ in NAMES] + [p for _, p, _ in NAMES] + [p.capitalize() for _, p, _ in NAMES]
    texts += list(COUNT_OBJECTS + SHARE_OBJECTS + SHARE_GROUPS + RESTATEMENTS + ENDINGS)
    texts += [s for pool in (PROBLEM_OPS["add"], PROBLEM_OPS["sub"]) for s in pool]
    texts += [s for pool in PROBLEM_OPS["mul"].values() for s in pool]
    texts += [f for forms in STEP_FORMS.values() for f in forms] + list(MUL_WORDS.values())
    texts += [f[0].upper() + f[1:] for forms in STEP_FORMS.values() for f in forms]
    texts += [f[0].upper() + f[1:] for f in MUL_WORDS.values()]
    texts += list(FIRST_OPENERS + NEXT_OPENERS)
    texts += ["has . , and Then shares them equally among . How many does each get ? have now ?",
              "0 1 2 3 4 5 6 7 8 9 0.5 3/4 x { } = + - * /"]
    return texts


# ---------------------------------------------------------------------------------------------
# Test suites standing in for the paper's six benchmarks (graded by level mix; sizes configurable)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteSpec:
    """A test suite: level mix (levels cycle, so repeats weight a level), default size, seed, domain."""

    levels: tuple[int, ...]
    n: int
    seed: int
    domain: str = "math"
    stands_for: str = ""


SUITES = {
    "toy-aime24": SuiteSpec((5, 6, 6), 30, 2024, stands_for="AIME 2024: hardest, few problems"),
    "toy-aime25": SuiteSpec((5, 6, 6), 30, 2025, stands_for="AIME 2025: hardest, few problems"),
    "toy-amc23": SuiteSpec((4, 5), 40, 2023, stands_for="AMC 2023: hard"),
    "toy-math500": SuiteSpec(LEVELS, 100, 500, stands_for="MATH500: all five levels, mixed"),
    "toy-olympiad": SuiteSpec((5, 6), 60, 77, stands_for="OlympiadBench: hard"),
    "toy-minerva": SuiteSpec((3, 4, 5), 50, 88, stands_for="Minerva: medium, quantitative"),
}
# Non-math suite for the cross-domain analysis (not one of the paper's six benchmarks).
EXTRA_SUITES = {
    "toy-relations": SuiteSpec(LEVELS, 60, 99, domain="relations", stands_for="non-math ordering puzzles"),
    # The smoke profile's tiny base only learns levels 1-2 in its minute of SFT; these suites let it show learning.
    "toy-easy": SuiteSpec((1, 2), 40, 11, stands_for="smoke check: math levels 1-2 (not a paper benchmark)"),
    "toy-relations-easy": SuiteSpec((1, 2), 40, 12, domain="relations",
                                    stands_for="smoke check: ordering puzzles, levels 1-2"),
}


def load_suite(name: str, n: int | None = None) -> pd.DataFrame:
    """Load a toy test suite (``SUITES`` or ``EXTRA_SUITES``) in the common schema; ``n`` overrides its size."""
    spec = SUITES.get(name) or EXTRA_SUITES.get(name)
    if spec is None:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join([*SUITES, *EXTRA_SUITES])}")
    size = spec.n if n is None else n
    if spec.domain == "relations":
        from sent.data.relations import make_relation_problems

        return make_relation_problems(size, split="test", levels=spec.levels, seed=spec.seed, suite=name)
    return make_math_problems(size, split="test", levels=spec.levels, seed=spec.seed, suite=name)
