"""Outcome rewards with TRL's reward-function signature.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every extra dataset column
repeated per generation (peers.md §1.5) and turns ``None`` into NaN (sample excluded). Completions are plain strings
(standard format) or ``[{"role": "assistant", "content": ...}]`` (conversational); both are accepted here, unlike
``trl.rewards.accuracy_reward`` which only takes conversational ones.

Correctness uses the same answer extraction and math equivalence as the semantic-entropy clustering
(:mod:`sent.semantic_entropy`): the last ``\\boxed{}`` of the completion is compared with the gold answer by
``math_verify.verify(gold, pred)`` (gold first, as in TRL), with each distinct gold/answer string parsed once per
process. A completion without a box is incorrect. Non-math domains use exact normalised string match.

The SENT authors' reward (verl ``math_dapo.compute_score``, paper.md §1.1) is +1 correct / -1 incorrect:
``make_accuracy_reward(1.0, -1.0)``. The default :func:`accuracy_reward` gives 1 / 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sent.semantic_entropy import (
    DEFAULT_TIMEOUT_S,
    canonicalize,
    extract_answer,
    matches_gold,
    normalize_answer,
    parsed,
)


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


def is_correct(completion_text: str, gold: str | None, domain: str = "math",
               timeout_s: int | None = DEFAULT_TIMEOUT_S) -> bool | None:
    """Whether the last ``\\boxed{}`` answer of ``completion_text`` matches ``gold``; ``None`` if gold is unusable.

    math: ``verify(parse(gold), parse(answer))`` (see :func:`sent.semantic_entropy.matches_gold`); a gold wrapped in
    ``\\boxed{}`` is unwrapped first. Other domains: equal :func:`normalize_answer` strings.
    ``is_correct("so \\\\boxed{0.5}", "\\\\frac{1}{2}")`` -> True; ``is_correct("x", "")`` -> None.
    """
    if not isinstance(gold, str) or not gold.strip():
        return None
    gold_answer = extract_answer(gold) or gold
    pred = extract_answer(completion_text)
    if domain != "math":
        g = normalize_answer(gold_answer)
        if not g:
            return None
        return pred is not None and normalize_answer(pred) == g
    g = canonicalize(gold_answer)
    if g is None or (g.parsable and g.key[0] != "q" and not parsed(g, timeout_s)):
        return None  # unparsable gold: TRL convention is to skip the sample
    c = canonicalize(pred)
    return c is not None and matches_gold(g, c, timeout_s)


def _column(values: Any, n: int, name: str) -> list:
    """A per-sample column (list of length n) or a scalar broadcast to n."""
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} completions; pass one per completion")
    return values


def make_accuracy_reward(correct: float = 1.0, incorrect: float = 0.0,
                         name: str = "accuracy_reward") -> Callable[..., list[float | None]]:
    """Accuracy reward returning ``correct``/``incorrect`` (``None`` for unparsable gold).

    TRL logs each reward as ``rewards/<__name__>``, so the returned function keeps the stable name ``name``.
    The authors' +1/-1 reward is ``make_accuracy_reward(1.0, -1.0)``.
    """

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
            ok = is_correct(completion_text(comp), gold, domain=dom or "math")
            out.append(None if ok is None else (correct if ok else incorrect))
        return out

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"{correct} if the last \\boxed{{}} answer matches `answer`, else {incorrect}; None if gold unparsable."
    return reward


accuracy_reward = make_accuracy_reward(1.0, 0.0)
math_accuracy_reward = accuracy_reward  # name used in docs/ARCHITECTURE.md


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """1.0 if the completion contains a closed ``\\boxed{...}`` (or ``\\fbox``), else 0.0."""
    return [1.0 if extract_answer(completion_text(c)) is not None else 0.0 for c in completions]
