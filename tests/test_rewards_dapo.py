"""verl's math_dapo reward (DAPO / SENT release) and the `dapo` prompt template.

Expected values are traced by hand through verl's steps: keep the last 300 characters, take the text after the
last "Answer:" to the end of its line, normalize_final_answer both sides, compare strings.
"""

import json

import pandas as pd
import pytest

from sent.data import PROMPT_TEMPLATES, render_prompts
from sent.data.benchmarks import FIXTURES_DIR, load_benchmark, paper_prompt, render_paper_prompts
from sent.rewards import (
    REWARD_RULES,
    accuracy_reward,
    make_accuracy_reward,
    make_reward,
    math_dapo_score,
    normalize_final_answer,
)


def test_answer_line_is_required():
    assert math_dapo_score("Let me compute 6 * 7.\nAnswer: 42", "42") is True
    assert math_dapo_score(r"so the answer is \boxed{42}", "42") is False  # no "Answer:" -> "[INVALID]"
    assert math_dapo_score("Answer: 41", "42") is False
    assert math_dapo_score("ANSWER:\n42", "42") is True  # case-insensitive; \s* after ":" crosses the newline
    assert math_dapo_score(r"Answer: \boxed{7}", "7") is True  # \boxed{} inside the answer line is unwrapped


def test_last_answer_line_wins():
    text = "Answer: 3\nWait, I made an error.\nAnswer: 4"
    assert math_dapo_score(text, "4") is True and math_dapo_score(text, "3") is False


def test_only_the_last_300_characters_are_read():
    assert math_dapo_score("Answer: 42\n" + "x" * 300, "42") is False  # the answer line is cut off
    assert math_dapo_score("x" * 1000 + "\nAnswer: 42", "42") is True


def test_minerva_normalisation():
    # "$\frac{1}{2}$": $..$ unwrapped, then "$" removed -> "\frac{1}{2}"
    assert math_dapo_score(r"Answer: $\frac{1}{2}$", r"\frac{1}{2}") is True
    assert math_dapo_score(r"Answer: \frac12", r"\frac{1}{2}") is True  # shorthand \frac12 -> \frac{1}{2}
    assert math_dapo_score("Answer: 0.5", r"\frac{1}{2}") is False  # strings, not values (math-verify says True)
    assert math_dapo_score("Answer: 5 inches", "5") is True  # spaces removed -> "5inches", "inches" removed
    assert math_dapo_score(r"Answer: 90^\circ", "90") is True  # "^\circ" removed
    assert math_dapo_score(r"Answer: \$1,000", "1000") is True  # "\$" removed; "1,000" is all digits -> "1000"
    assert math_dapo_score("Answer: x = 3", "3") is True  # only the text after the last "=" is kept
    assert math_dapo_score("Answer: 3", "x=3") is True  # the gold is normalised the same way
    assert math_dapo_score("Answer: 42.", "42") is False  # verl quirk kept: "42." is not all digits, stays "42."
    assert normalize_final_answer(r"x = 5 \text{ inches}") == "5"  # "=", " " and "inches" gone, \text{} unwrapped
    assert normalize_final_answer(r"\textbf{(B)}") == "(B)"


def test_strict_box_verify():
    # is_correct_strict_box: last \boxed{} of the final 100 characters, compared with gold unnormalised
    assert math_dapo_score(r"\boxed{42}", "42", strict_box_verify=True) is True
    assert math_dapo_score("Answer: 42", "42", strict_box_verify=True) is False  # no box
    assert math_dapo_score(r"\boxed{\frac12}", r"\frac{1}{2}", strict_box_verify=True) is False
    assert math_dapo_score(r"\boxed{42}" + "x" * 100, "42", strict_box_verify=True) is False  # box too early


def test_make_reward_rules():
    texts = ["work\nAnswer: 42", r"work \boxed{42}", "Answer: 0.5"]
    golds = ["42", "42", r"\frac{1}{2}"]
    dapo = make_reward("math_dapo", 1.0, -1.0)
    assert dapo(texts, answer=golds) == [1.0, -1.0, -1.0]
    # math_verify (default): last \boxed{} only, values compared -> only the boxed one is correct
    assert make_reward()(texts, answer=golds) == [0.0, 1.0, 0.0] == accuracy_reward(texts, answer=golds)
    assert dapo.__name__ == make_reward().__name__ == "accuracy_reward"  # TRL logs rewards/accuracy_reward
    assert "Answer:" in dapo.__doc__ and "boxed" in make_reward().__doc__
    # empty gold is skipped (None); the domain column does not change the DAPO rule
    assert dapo(["Answer: 1"], answer=[""]) == [None]
    assert dapo(["Answer: yes"], answer=["yes"], domain=["relations"]) == [1.0]
    conv = [[{"role": "assistant", "content": "Answer: 42"}]]
    assert dapo(prompts=["q"], completions=conv, completion_ids=None, answer=["42"]) == [1.0]
    assert make_accuracy_reward(1.0, -1.0)([r"\boxed{2}"], answer=["3"]) == [-1.0]


def test_unknown_rule_lists_valid_ones():
    assert set(REWARD_RULES) == {"math_verify", "math_dapo"}
    with pytest.raises(ValueError, match="math_verify.*math_dapo"):
        make_reward("boxed")


DAPO_TEXT = ("Solve the following math problem step by step. The last line of your response should be of the form "
             "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
             "What is $3 + 4$?\n\nRemember to put your answer on its own line after \"Answer:\".")


def test_dapo_template_renders_the_dataset_prompt():
    df = pd.DataFrame({"problem": ["What is $3 + 4$?"]})
    assert render_prompts(df, "dapo")["prompt"][0] == DAPO_TEXT
    assert paper_prompt("What is $3 + 4$?", "dapo") == DAPO_TEXT
    assert render_paper_prompts(df, template="dapo")["prompt"][0] == DAPO_TEXT  # no tokenizer -> plain
    assert "{problem}" in PROMPT_TEMPLATES["dapo"]
    with pytest.raises(ValueError, match="paper"):
        paper_prompt("1+1?", "lighteval")


def test_dapo_template_round_trips_the_hub_prompt():
    # the loader strips DAPO-Math-17k's wrapper; the dapo template puts back exactly the hub's prompt text
    rows = [json.loads(line) for line in (FIXTURES_DIR / "dapo_math_17k.jsonl").read_text().splitlines()]
    hub = {f"dapo-{r['extra_info']['index']}": r["prompt"][0]["content"] for r in rows}
    df = render_prompts(load_benchmark("dapo", "fixture"), "dapo")
    assert len(df) > 0 and all(p == hub[pid] for pid, p in zip(df["prompt_id"], df["prompt"]))
