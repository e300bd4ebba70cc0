"""Outcome rewards with TRL's reward-function signature.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every extra dataset column
repeated per generation (peers.md §1.5) and turns ``None`` into NaN (sample excluded). Completions are plain strings
(standard format) or ``[{"role": "assistant", "content": ...}]`` (conversational); both are accepted here, unlike
``trl.rewards.accuracy_reward`` which only takes conversational ones.

Correctness is :func:`sent.answers.is_correct`, the rule shared with the semantic-entropy clustering, ``sent eval``
and the toy model: the last ``\\boxed{}`` of the completion is compared with the gold answer by
``math_verify.verify(gold, pred)`` (gold first, as in TRL), with each distinct gold/answer string parsed once per
process. A completion without a box is incorrect. Non-math domains use exact normalised string match.

The SENT authors' reward is verl's ``math_dapo.compute_score`` (paper.md §1.1; plan-audit.md finding 9): +1 / -1,
the answer read from the last ``Answer:`` line of the final 300 characters, Minerva-normalised and compared as
strings. It is ported as :func:`math_dapo_score`; choose between the two rules with :func:`make_reward`
(``make_reward("math_dapo", 1.0, -1.0)`` is the authors' reward, to pair with the ``dapo`` prompt template).
The default :func:`accuracy_reward` is ``make_reward("math_verify", 1.0, 0.0)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sent.answers import extract_answer, is_correct


def completion_text(completion: Any) -> str:
    """Text of one completion: a string, or the content of the last assistant message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, Sequence) and completion and all(isinstance(m, dict) for m in completion):
        msgs = [m for m in completion if m.get("role", "assistant") == "assistant"] or list(completion)
        content = msgs[-1].get("content", "")
        if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    if completion is None or (isinstance(completion, Sequence) and not completion):
        return ""
    raise ValueError(f"completion must be a str or a list of {{'role', 'content'}} messages, got {type(completion)}")


def _column(values: Any, n: int, name: str) -> list:
    """A per-sample column (list of length n) or a scalar broadcast to n."""
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} completions; pass one per completion")
    return values


# ------------------------------------------------------------------------------- verl math_dapo (DAPO's reward)
# Ported from volcengine/verl verl/utils/reward_score/math_dapo.py @ b178a3cd56f58b2d502255daba591e92833930a7
# (file last changed in 00a10a8ef389556f957a2f36132b2358fd6a109f; verl's default_compute_score calls it with
# strict_box_verify=False for data_source math_dapo)
# Apache-2.0; itself adapted from lm-evaluation-harness hendrycks_math/utils.py (Minerva's normalisation).
# Kept literally, quirks included (a trailing period or "a "/"an " inside the answer changes it), so that rewards
# match the authors' verl runs.
_DAPO_SUBSTITUTIONS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""), ("mbox", "text"),
                       (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}")]
_DAPO_REMOVED_EXPRESSIONS = [
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
    "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
    "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
    "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots",
]
_DAPO_ANSWER_RE = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")  # verl is_correct_minerva's answer_pattern
DAPO_TAIL_CHARS = 300  # compute_score only reads the completion's last 300 characters


def normalize_final_answer(final_answer: str) -> str:
    """verl ``math_dapo.normalize_final_answer`` (Minerva): the text after the last ``=``, spaces, units and words
    such as ``dollars``/``degrees``/``^\\circ`` removed, ``$..$``/``\\text{}``/``\\boxed{}`` unwrapped,
    ``\\frac12`` -> ``\\frac{1}{2}``, ``1,000`` -> ``1000``. ``"x = 5 \\text{ inches}"`` -> ``"5"``."""
    final_answer = final_answer.split("=")[-1]
    for before, after in _DAPO_SUBSTITUTIONS:
        final_answer = final_answer.replace(before, after)
    for expr in _DAPO_REMOVED_EXPRESSIONS:
        final_answer = final_answer.replace(expr, "")
    final_answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", final_answer)
    final_answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", final_answer)
    final_answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", final_answer)
    final_answer = final_answer.replace("$", "")
    if final_answer.replace(",", "").isdigit():
        final_answer = final_answer.replace(",", "")
    return final_answer.strip()


def _last_boxed_only_string(string: str) -> str | None:
    """verl ``last_boxed_only_string``: the last ``\\boxed{...}`` with its braces balanced, else ``None``."""
    idx = string.rfind("\\boxed{")
    if idx < 0:
        return None
    depth = 0
    for i in range(idx, len(string)):
        if string[i] == "{":
            depth += 1
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                return string[idx:i + 1]
    return None


def math_dapo_score(completion_text: str, gold: str, strict_box_verify: bool = False) -> bool:
    """verl ``math_dapo.compute_score(...)["acc"]`` (file and commit in the comment above; verl's score is +1 / -1).

    Only the last :data:`DAPO_TAIL_CHARS` characters are read. Default (``is_correct_minerva``; the DAPO recipe
    leaves ``strict_box_verify`` off): the answer is the text after the LAST ``Answer:`` (case-insensitive) up to the
    end of its line, and it is correct iff ``normalize_final_answer(answer) == normalize_final_answer(gold)``; no
    ``Answer:`` line = incorrect, even with a correct ``\\boxed{}``. ``strict_box_verify=True``
    (``is_correct_strict_box``): the content of the last ``\\boxed{}`` in the final 100 of those characters must
    equal ``gold`` exactly, with no normalisation. verl's ``pause_tokens_index`` is not ported.
    ``math_dapo_score("so\\nAnswer: $\\frac12$", "\\frac{1}{2}")`` -> True.
    """
    text = completion_text[-DAPO_TAIL_CHARS:]
    if strict_box_verify:
        boxed = _last_boxed_only_string(text[-100:])
        return boxed is not None and boxed[len("\\boxed{"):-1] == gold
    match = _DAPO_ANSWER_RE.findall(text)
    pred = normalize_final_answer(match[-1] if match else "[INVALID]")
    return pred == normalize_final_answer(gold)


# --------------------------------------------------------------------------------------------- reward factories
def _math_verify_rule(text: str, gold: str | None, domain: str) -> bool | None:
    return is_correct(text, gold, domain=domain)


def _math_dapo_rule(text: str, gold: str | None, domain: str) -> bool | None:
    # verl applies math_dapo to every math_dapo-sourced row: `domain` is ignored. An empty gold is skipped (None),
    # as under math_verify, rather than scored against "".
    if not isinstance(gold, str) or not gold.strip():
        return None
    return math_dapo_score(text, gold)


REWARD_RULES: dict[str, Callable[[str, str | None, str], bool | None]] = {
    "math_verify": _math_verify_rule,  # last \boxed{} vs gold with math-verify (this package's default)
    "math_dapo": _math_dapo_rule,  # verl math_dapo: last "Answer:" line, Minerva-normalised exact match (DAPO, SENT)
}
_RULE_DOCS = {"math_verify": "the last \\boxed{} answer matches `answer` (math-verify)",
              "math_dapo": "the last 'Answer:' line matches `answer` after Minerva normalisation (verl math_dapo)"}


def make_reward(rule: str = "math_verify", correct: float = 1.0, incorrect: float = 0.0,
                name: str = "accuracy_reward") -> Callable[..., list[float | None]]:
    """Outcome reward with TRL's signature: ``correct`` / ``incorrect`` per completion, ``None`` for unusable gold.

    Args:
        rule: a key of :data:`REWARD_RULES`: ``"math_verify"`` (default: last ``\\boxed{}``, math-verify; exact
            normalised match for non-math ``domain`` rows) or ``"math_dapo"`` (verl's ``math_dapo`` as used by DAPO
            and the SENT release, see :func:`math_dapo_score`; pair it with the ``dapo`` prompt template).
        correct, incorrect: reward values; the authors use +1 / -1 (``make_reward("math_dapo", 1.0, -1.0)``).
        name: the function's ``__name__``; TRL logs each reward as ``rewards/<__name__>``, so it stays the same
            whatever the rule.
    """
    if rule not in REWARD_RULES:
        raise ValueError(f"reward rule {rule!r} is not valid; use one of {list(REWARD_RULES)}")
    score = REWARD_RULES[rule]

    def reward(completions: Sequence, answer: Sequence[str] | str | None = None, domain: Sequence[str] | str | None = None,
               **kwargs) -> list[float | None]:
        if answer is None:
            answer = kwargs.get("solution")
        if answer is None:
            raise ValueError("answer is missing: the dataset needs an 'answer' column (gold final answer)")
        n = len(completions)
        golds, domains = _column(answer, n, "answer"), _column(domain, n, "domain")
        out: list[float | None] = []
        for comp, gold, dom in zip(completions, golds, domains):
            ok = score(completion_text(comp), gold, dom or "math")
            out.append(None if ok is None else (correct if ok else incorrect))
        return out

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"{correct} if {_RULE_DOCS[rule]}, else {incorrect}; None if gold unusable."
    return reward


def make_accuracy_reward(correct: float = 1.0, incorrect: float = 0.0,
                         name: str = "accuracy_reward") -> Callable[..., list[float | None]]:
    """``make_reward("math_verify", correct, incorrect, name)``: last ``\\boxed{}`` answer vs gold (math-verify)."""
    return make_reward("math_verify", correct, incorrect, name)


accuracy_reward = make_accuracy_reward(1.0, 0.0)


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """1.0 if the completion contains a closed ``\\boxed{...}`` (or ``\\fbox``), else 0.0."""
    return [1.0 if extract_answer(completion_text(c)) is not None else 0.0 for c in completions]
