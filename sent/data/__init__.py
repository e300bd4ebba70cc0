"""Problem sets in the common schema (docs/ARCHITECTURE.md): synthetic math, ordering puzzles, toy suites.

Every loader returns a DataFrame with ``prompt_id, problem, answer, suite, domain, level``;
:func:`render_prompts` adds ``prompt``.
"""

from __future__ import annotations

import pandas as pd

from sent.data.benchmarks import DAPO_PROMPT_TEMPLATE
from sent.data.relations import make_relation_problems
from sent.data.synthetic import EXTRA_SUITES, LEVELS, SUITES, load_suite, make_math_problems


PROMPT_TEMPLATES = {
    # The toy model's chat-free format; completions start with a space ("Q: ...\nA: First, ...").
    "toy": "Q: {problem}\nA:",
    # The paper's instruction for chat models (applied inside the chat template by the caller).
    "paper": "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.",
    # DAPO-Math-17k's own prompt (an "Answer:" line), to pair with the `math_dapo` reward (sent.rewards.make_reward).
    "dapo": DAPO_PROMPT_TEMPLATE.replace("{question}", "{problem}"),
}


def render_prompts(df: pd.DataFrame, template: str = "toy") -> pd.DataFrame:
    """Return a copy of ``df`` with a ``prompt`` column: ``template`` (a name in ``PROMPT_TEMPLATES``
    or a literal string containing ``{problem}``) filled with each row's problem."""
    if "problem" not in df.columns:
        raise ValueError("df must have a 'problem' column (the common problem schema)")
    text = PROMPT_TEMPLATES.get(template, template)
    if "{problem}" not in text:
        raise ValueError(f"template must be one of {list(PROMPT_TEMPLATES)} or contain '{{problem}}', got {template!r}")
    out = df.copy()
    # str.replace, not str.format: the paper template contains a literal "\boxed{}".
    out["prompt"] = [text.replace("{problem}", p) for p in out["problem"]]
    return out


__all__ = ["EXTRA_SUITES", "LEVELS", "PROMPT_TEMPLATES", "SUITES", "load_suite", "make_math_problems",
           "make_relation_problems", "render_prompts"]
