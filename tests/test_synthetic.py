"""Synthetic problem generators: determinism, disjoint splits, correct answers, graded levels, diversity."""

import re
from fractions import Fraction

import pytest

from sent.data import PROMPT_TEMPLATES, SUITES, load_suite, make_math_problems, make_relation_problems, render_prompts
from sent.data.synthetic import EXTRA_SUITES, MathProblem, answer_forms, math_solutions, parse_number


SCHEMA = ["prompt_id", "problem", "answer", "suite", "domain", "level", "solution"]
OPS = {"plus": lambda a, b: a + b, "+": lambda a, b: a + b, "minus": lambda a, b: a - b,
       "-": lambda a, b: a - b, "times": lambda a, b: a * b, "*": lambda a, b: a * b}


def _boxed(text):
    return re.findall(r"\\boxed\{([^{}]*)\}", text)[-1]


def test_math_schema_and_determinism():
    a = make_math_problems(30, seed=3)
    b = make_math_problems(30, seed=3)
    c = make_math_problems(30, seed=4)
    assert list(a.columns[: len(SCHEMA)]) == SCHEMA
    assert a.equals(b)
    assert not a["problem"].equals(c["problem"])
    assert a["prompt_id"].iloc[7] == "math-train-000007"
    assert set(a["domain"]) == {"math"} and set(a["suite"]) == {"train"}
    assert a["prompt_id"].is_unique


def test_train_test_disjoint_by_canonical_parameters():
    train = make_math_problems(600, split="train", seed=0)
    test = make_math_problems(300, split="test", seed=0)
    assert not set(train["key"]) & set(test["key"])
    rtrain = make_relation_problems(300, split="train", seed=0)
    rtest = make_relation_problems(300, split="test", seed=0)
    assert not set(rtrain["problem"]) & set(rtest["problem"])


def test_math_answers_recomputed_from_the_problem_text():
    df = make_math_problems(120, seed=1)
    for row in df.itertuples():
        nums = [int(x) for x in re.findall(r"\d+", row.problem)]
        x = Fraction(nums[0])
        clauses = re.split(r", | and |\. ", row.problem)
        operands = iter(nums[1:])
        for clause in clauses[1:]:
            if "doubles" in clause:
                x *= 2
            elif "triples" in clause:
                x *= 3
            elif "shares" in clause:
                x /= next(operands)
            elif re.search(r"(buys|finds|gets) \d+ more", clause):
                x += next(operands)
            elif re.search(r"(gives away|loses|sells) \d+", clause):
                x -= next(operands)
        assert x == parse_number(row.answer), row.problem
        assert parse_number(_boxed(row.solution)) == x, row.solution  # the CoT's boxed form is equivalent


def test_math_cot_steps_are_arithmetically_right():
    df = make_math_problems(200, seed=2)
    checked = 0
    for sol in df["solution"]:
        for a, op, b, c in re.findall(r"(\d+) (plus|\+|minus|-|times|\*) (\d+) (?:is|=) (\d+)", sol):
            assert OPS[op](int(a), int(b)) == int(c), sol
            checked += 1
    assert checked > 200


def test_levels_are_graded():
    df = make_math_problems(120, seed=0)
    steps = df.groupby("level")["n_steps"].mean()
    assert list(steps) == [1, 2, 3, 4, 5, 6]  # level L has L steps
    lengths = df.assign(n=df["solution"].str.len()).groupby("level")["n"].mean()
    assert lengths.is_monotonic_increasing
    rel = make_relation_problems(60, seed=0)
    assert list(rel.groupby("level")["n_steps"].mean()) == [1, 2, 3, 4, 5, 6]  # L + 1 people, L links


def test_answer_forms():
    assert answer_forms(6, 8) == ["3/4", "0.75", "6/8"]
    assert answer_forms(1, 3) == ["1/3"]  # no terminating decimal
    assert answer_forms(7, 2) == ["7/2", "3.5"]
    assert answer_forms(8, 4) == ["2"]
    assert parse_number("0.75") == parse_number("3/4") == Fraction(3, 4)
    assert parse_number("Ann") is None


def test_equivalent_fraction_forms_occur_in_solutions():
    df = make_math_problems(600, levels=(4, 5, 6), seed=0)
    boxed = [_boxed(s) for s in df["solution"]]
    assert any("/" in b for b in boxed) and any("." in b for b in boxed)
    # The same canonical problem gets different but equivalent written answers across CoT samples.
    frac = df[df["answer"].isin(["1/2", "3/2", "5/2", "7/2", "9/2", "1/4", "3/4", "5/4"])].iloc[0]
    answers = {_boxed(s) for s in math_solutions(frac["key"], int(frac["level"]), 40, seed=0)}
    assert len(answers) >= 2 and len({parse_number(a) for a in answers}) == 1, answers


def test_solutions_are_diverse_but_answer_is_fixed():
    key = MathProblem(4, 20, (("add", 5), ("sub", 3), ("add", 7), ("div", 4))).key()
    sols = math_solutions(key, 4, 50, seed=0)
    assert len(set(sols)) >= 30  # paraphrases, openers, orders
    assert {parse_number(_boxed(s)) for s in sols} == {Fraction(29, 4)}
    firsts = {s.split()[0] for s in sols}
    assert len(firsts) >= 4


def test_relations_answers_and_diversity():
    df = make_relation_problems(120, seed=0)
    for row in df.itertuples():
        assert _boxed(row.solution) == row.answer
        assert row.answer in row.problem
        # recompute: the answer is at the asked rank of the order implied by the facts
        more = {(a, b) for a, b in re.findall(r"(\w+) is (?:taller|older|faster|heavier) than (\w+)", row.problem)}
        more |= {(b, a) for a, b in re.findall(r"(\w+) is (?:shorter|younger|slower|lighter) than (\w+)", row.problem)}
        people = {p for pair in more for p in pair}
        above = {p: 0 for p in people}
        for p in people:  # number of people above p in the chain = transitive predecessors
            frontier = {a for a, b in more if b == p}
            seen = set()
            while frontier:
                seen |= frontier
                frontier = {a for a, b in more if b in frontier} - seen
            above[p] = len(seen)
        q = re.search(r"Who is the (second |third )?(\w+)\?", row.problem)
        ordinal = {"second ": 1, "third ": 2}.get(q.group(1), 0)
        most = q.group(2) in ("tallest", "oldest", "fastest", "heaviest")
        rank = ordinal if most else len(people) - 1 - ordinal
        assert above[row.answer] == rank, row.problem
    assert df["solution"].nunique() == len(df)


def test_suites():
    assert list(SUITES) == ["toy-aime24", "toy-aime25", "toy-amc23", "toy-math500", "toy-olympiad", "toy-minerva"]
    aime = load_suite("toy-aime24")
    assert len(aime) == 30 and set(aime["suite"]) == {"toy-aime24"} and aime["prompt_id"].iloc[0] == "toy-aime24-000"
    assert set(aime["level"]) == {5, 6}
    assert len(load_suite("toy-math500", n=12)) == 12
    rel = load_suite("toy-relations", n=10)
    assert set(rel["domain"]) == {"relations"} and "toy-relations" in EXTRA_SUITES
    train_keys = set(make_math_problems(600, seed=0)["key"])
    assert not train_keys & set(aime["key"])
    with pytest.raises(ValueError, match="valid suites"):
        load_suite("aime24")


def test_render_prompts_and_bad_inputs():
    df = render_prompts(make_math_problems(2, seed=0), "toy")
    assert df["prompt"].iloc[0] == "Q: " + df["problem"].iloc[0] + "\nA:"
    paper = render_prompts(df, "paper")["prompt"].iloc[0]
    assert paper.endswith("within \\boxed{}.") and paper.startswith(df["problem"].iloc[0])
    assert "{problem}" in PROMPT_TEMPLATES["toy"]
    with pytest.raises(ValueError, match="template"):
        render_prompts(df, "chatml")
    with pytest.raises(ValueError, match="split"):
        make_math_problems(2, split="dev")
    with pytest.raises(ValueError, match="levels"):
        make_math_problems(2, levels=(7,))
