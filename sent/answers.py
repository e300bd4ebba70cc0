"""Final answers: extraction from a completion, normalisation, math equivalence and correctness against a gold.

One rule for every reader of answers: semantic-entropy clustering (:mod:`sent.semantic_entropy`), the training
reward (:mod:`sent.rewards`), ``sent eval`` and the toy base model's pass@1 (:mod:`sent.toy`).

* :func:`extract_answer`: the content of the LAST ``\\boxed{}`` (or ``\\fbox{}``) of a completion; ``None`` when
  there is none or it is unclosed (a generation cut at ``max_new_tokens``).
* :func:`normalize_answer`: the string compared for exact matching (non-math domains, answers never parsed).
* :func:`canonicalize` -> :class:`Canonical`: a cheap key per answer (``None`` for a missing or empty answer), so
  that most comparisons need no math-verify.
* :func:`math_equivalent` (math-verify in BOTH directions: semantic clustering) and :func:`matches_gold` (one
  direction, gold first, as in TRL).
* :func:`is_correct`: whether a completion's answer matches a gold answer (math, or exact for other domains).

Math equivalence: two answers are equivalent iff math-verify accepts them in BOTH directions
(``verify(a, b) and verify(b, a)``, peers.md §4-5). To keep this cheap on 17k prompts x 8 answers we canonicalise:

1. every answer gets a cheap key: its exact rational value when it is a plain number (``2``, ``-0.5``, ``3/4``,
   ``\\frac{3}{4}``, ``\\dfrac34``), else its normalised string (``$``, ``\\left``/``\\right``, spaces removed,
   ``\\dfrac``/``\\tfrac`` -> ``\\frac``). Answers with the same key are equivalent without calling math-verify;
2. each distinct non-numeric string is parsed ONCE (``lru_cache`` per process) and the parsed objects are compared;
3. math-verify is only called across *different* keys, and not when the pair surely differs (two different exact
   rationals, two numbers more than ~1e-5 apart, a number vs ``x^2+1`` or vs an interval; see
   :func:`_surely_different`). A decimal such as ``0.3333333`` still goes through math-verify, which matches it to
   ``1/3``.

A non-empty answer math-verify cannot parse, an answer longer than :data:`MAX_ANSWER_CHARS`, or a plain word
(``blah``, ``yes``: math-verify would read it as a product of symbols, so ``blah == halb``) is a real answer: it is
matched by its normalised string only, and so is a *costly* answer, one whose parse could compute without bound
(:func:`is_costly`, the same rule in every thread):

* a power of a power (``10^{10^{10}}``, ``9^{9^9}``), an exponent of 6 or more digits, ``**``, ``\\uparrow``;
* a factorial of a number of 4 or more digits or of a bracket (``12345!``, ``(10^5)!``);
* a binomial or Gamma function (``\\binom``, ``\\dbinom``, ``\\tbinom``, ``\\choose``, ``\\Gamma``, ``\\gamma``) unless the answer
  holds only numbers of at most 4 digits joined by ``+`` / ``-`` (``\\binom{2024}{2}`` is parsed,
  ``\\binom{10^9}{5}``, ``\\binom{100000}{3}`` and ``\\Gamma(99\\cdot 99)`` are not);
* a sum or product operator (``\\sum``, ``\\prod``): its bounds can run to billions of terms.

sympy evaluates these while parsing, in C (gmpy) where no timeout can stop it, or in Python loops that only the
main thread's timeout can stop. ``\\binom{10^9}{5 \\cdot 10^8}`` would hold a thread (and the GIL) for hours.

Timeouts: math-verify bounds ``parse``/``verify`` with ``signal.alarm``, which only works in a process's main thread.
Called from a non-main thread, we disable math-verify's timeouts and rely on the input bounds (answer length cap,
the costly rule above) instead; ``sent.semantic_entropy.score_dataset`` runs its workers in separate processes (each
in its own main thread).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache


logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 200  # longer extracted answers are compared by exact string only (never parsed)
MAX_TEXT_CHARS = 100_000  # extract_answer only scans the last this many characters of a completion
DEFAULT_TIMEOUT_S = 5  # math-verify's own default for parse and verify

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


# ----------------------------------------------------------------------------------------------------- extraction
def extract_answer(text: str | None) -> str | None:
    """Content of the LAST ``\\boxed{...}`` (or ``\\boxed {...}``, ``\\fbox{...}``) in ``text``, else ``None``.

    Nested and escaped braces are handled (``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``). An unclosed last box (a
    truncated generation) gives ``None``. Only the last :data:`MAX_TEXT_CHARS` characters are scanned, so absurdly
    long inputs stay cheap. Non-string input gives ``None``.
    """
    if not isinstance(text, str):
        return None
    if len(text) > MAX_TEXT_CHARS:
        text = text[-MAX_TEXT_CHARS:]
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth, i, n = 1, start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # skip escaped char, e.g. \{ or \}
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
        i += 1
    return None


# -------------------------------------------------------------------------------------------------- normalisation
_TEXT_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right)(?![a-zA-Z])")


def normalize_answer(answer: str, lowercase: bool = True) -> str:
    """Normalised answer string for exact matching.

    Strips, removes ``$``, unwraps ``\\text{..}`` (and ``\\mathrm``, ``\\textbf``, ...), drops ``\\left``/``\\right``
    and LaTeX spacing commands, maps ``\\dfrac``/``\\tfrac`` to ``\\frac``, collapses whitespace, strips a trailing
    period and (by default) lowercases. ``"  The $\\text{Answer}$. "`` -> ``"the answer"``.
    """
    s = answer.strip().replace("$", "")
    s = _TEXT_RE.sub(r"\1", s)
    s = _SPACING_RE.sub(" ", s)
    s = _LEFT_RIGHT_RE.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = " ".join(s.split())
    s = s.rstrip(".").strip()
    return s.lower() if lowercase else s


_NUM_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")
_SLASH_RE = re.compile(r"^([+-]?)(\d+)/(\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac(?:\{([+-]?\d+)\}|(\d))(?:\{([+-]?\d+)\}|(\d))$")
_WORD_RE = re.compile(r"^[a-z]{2,}$", re.IGNORECASE)
# Inputs whose parse builds astronomically large integers (10^{10^{10}}, 9^{9^9}, 12345!): sympy computes them in C,
# where neither math-verify's signal.alarm nor anything else can interrupt it, so they are never parsed.
_COSTLY_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\(?[\w.]+\)?\s*\^|\^\s*\{?\s*\d{6,}|\d{4,}\s*!|[)}\]]\s*!|\*\*|\\uparrow")
# Sum / product operators: the number of terms is a bound in the answer (\sum_{k=1}^{999} k! runs for minutes).
_BIG_OPERATOR_RE = re.compile(r"\\(?:sum|prod)")
# Binomials and Gamma grow like factorials of their arguments (no lookahead: compaction glues "\choose k").
_FACTORIAL_LIKE_RE = re.compile(r"\\(?:[dt]?binom|choose|[Gg]amma)")
# What a binomial / Gamma answer may hold besides those commands to be parsed: small numbers added or subtracted.
_SMALL_ARGS_RE = re.compile(r"[0-9a-zA-Z{}()\[\]+\-,]*")


def is_costly(compact: str) -> bool:
    """Whether parsing the compacted answer could compute without bound (module docstring, "costly")."""
    if _COSTLY_RE.search(compact) or _BIG_OPERATOR_RE.search(compact):
        return True
    if _FACTORIAL_LIKE_RE.search(compact):
        rest = _FACTORIAL_LIKE_RE.sub("", compact)
        return not _SMALL_ARGS_RE.fullmatch(rest) or re.search(r"\d{5,}", rest) is not None
    return False


def _rational(s: str) -> tuple[Fraction, bool] | None:
    """``(value, exact)`` of a plain number written in ``s`` (no spaces), ``exact`` False for decimals."""
    if _NUM_RE.match(s):
        return Fraction(s), "." not in s
    m = _SLASH_RE.match(s)
    if m:
        sign, num, den = m.groups()
        return (Fraction(int(num), int(den)) * (-1 if sign == "-" else 1), True) if int(den) else None
    m = _FRAC_RE.match(s)
    if m:
        sign, n1, n2, d1, d2 = m.groups()
        num, den = int(n1 or n2), int(d1 or d2)
        return (Fraction(num, den) * (-1 if sign == "-" else 1), True) if den else None
    return None


@dataclass(frozen=True)
class Canonical:
    """Cheap canonical form of one extracted math answer (see the module docstring).

    ``key``: equal keys mean equivalent answers. ``raw``: the string handed to math-verify. ``exact_rational``: the
    key is an exact rational (integer or fraction). ``parsable``: math-verify may be asked about it (False for words
    and over-long answers, which are matched by key only).
    """

    key: tuple
    raw: str
    exact_rational: bool = False
    parsable: bool = True
    compact: str = ""


def canonicalize(answer: str | None) -> Canonical | None:
    """:class:`Canonical` of an extracted answer, or ``None`` for a missing or empty answer."""
    if answer is None or not isinstance(answer, str):
        return None
    raw = answer.strip().strip("$").strip()
    if not raw:
        return None
    if len(raw) > MAX_ANSWER_CHARS:
        return Canonical(("s", normalize_answer(raw)), raw, parsable=False)
    compact = "".join(normalize_answer(raw, lowercase=False).split())
    if not compact:
        return None
    value = _rational(compact)
    if value is not None:
        return Canonical(("q", value[0]), raw, exact_rational=value[1], compact=compact)
    return Canonical(("s", compact), raw, parsable=not (_WORD_RE.match(compact) or is_costly(compact)))


# ------------------------------------------------------------------------------------------------- math-verify glue
def _timeouts_allowed() -> bool:
    """math-verify's signal.alarm timeouts only work in the main thread of a process."""
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=65536)
def _parse_cached(raw: str, timeout_s: int | None) -> tuple:
    from math_verify import parse

    try:
        result = tuple(parse(f"${raw}$", parsing_timeout=timeout_s))
    except Exception as err:  # math-verify raises on odd inputs despite raise_on_error=False
        logger.debug("math-verify parse failed on %r: %s", raw, err)
        return ()
    # inside $...$ math-verify falls back to the bare string when no expression parses: that is a failure too
    return result if any(not isinstance(x, str) for x in result) else ()


@lru_cache(maxsize=65536)
def _number_expr(compact: str, value: Fraction, exact: bool) -> tuple:
    """The sympy number math-verify's parser would give for a plain number, built directly (~100x cheaper)."""
    import sympy

    if not exact:
        return sympy.Float(compact.lstrip("+"), 15), compact
    return (sympy.Integer(value.numerator) if value.denominator == 1 else sympy.Rational(value.numerator,
                                                                                         value.denominator)), compact


def parsed(c: Canonical, timeout_s: int | None = DEFAULT_TIMEOUT_S) -> tuple:
    """math-verify parse of ``c.raw`` (cached per distinct string and process); ``()`` when no expression parses.

    Plain numbers skip the parser: an Integer/Rational, or a 15-digit Float for decimals, as math-verify produces.
    """
    if c.key[0] == "q":
        return _number_expr(c.compact, c.key[1], c.exact_rational)
    if not c.parsable:
        return ()
    return _parse_cached(c.raw, timeout_s if _timeouts_allowed() else None)


def _verify(gold: tuple, pred: tuple, timeout_s: int | None) -> bool:
    from math_verify import verify

    try:
        return bool(verify(list(gold), list(pred), timeout_seconds=timeout_s if _timeouts_allowed() else None))
    except Exception as err:
        logger.debug("math-verify verify failed: %s", err)
        return False


def _complex(x) -> complex | None:
    try:
        v = complex(x.evalf(15))
    except (TypeError, ValueError, OverflowError, ArithmeticError, AttributeError):
        return None
    return v if math.isfinite(v.real) and math.isfinite(v.imag) else None


@lru_cache(maxsize=65536)
def _parsed_kind(raw: str, timeout_s: int | None) -> tuple[str, tuple[complex, ...]]:
    """What math-verify parsed ``raw`` into, for :func:`_surely_different`.

    ``("num", values)``: plain finite numbers; a percentage ``N\\%`` counts as both N and N/100 (math-verify equates
    ``9\\%`` with ``9`` and with ``0.09``). ``("sym", ())``: algebraic expressions with free symbols.
    ``("set", ())``: intervals and sets/tuples of >= 2 elements. ``("other", ())``: anything else.
    """
    import sympy

    exprs = [x for x in _parse_cached(raw, timeout_s) if not isinstance(x, str)]
    if exprs and all(isinstance(x, sympy.Interval) or (isinstance(x, (sympy.FiniteSet, sympy.Tuple)) and len(x) >= 2)
                     for x in exprs):
        return "set", ()
    if not exprs or any(not isinstance(x, sympy.Expr) for x in exprs):
        return "other", ()
    if all(x.free_symbols and not isinstance(x, sympy.Symbol) for x in exprs):
        return "sym", ()
    values: list[complex] = []
    for x in exprs:
        pct = x.has(sympy.UnevaluatedExpr)  # latex2sympy writes N% as N * UnevaluatedExpr(1/100)
        v = _complex(x.doit() if pct else x) if x.is_number or pct else None
        if v is None:
            return "other", ()
        values += [v, 100 * v] if pct else [v]
    return "num", tuple(values)


def _kind(c: Canonical, timeout_s: int | None) -> tuple[str, tuple[complex, ...]]:
    if c.key[0] == "q":
        try:
            return "num", (complex(float(c.key[1])),)
        except OverflowError:
            return "other", ()
    if not c.parsable:
        return "other", ()
    return _parsed_kind(c.raw, timeout_s if _timeouts_allowed() else None)


def _surely_different(a: Canonical, b: Canonical, timeout_s: int | None) -> bool:
    """True when math-verify cannot equate ``a`` and ``b``; lets us skip most ``verify`` calls (tens of ms each).

    * two exact rationals with different values;
    * two plain numbers more than 1e-5 apart (plus a relative slack for 15-digit evaluation): math-verify equates
      numbers only symbolically or, when one is a float, after rounding to ``float_rounding=6`` decimals;
    * a plain number and an interval or a set/tuple of >= 2 elements (math-verify compares ``{n}`` with the set);
    * a plain number and an algebraic expression with free symbols (``x^2+1``). Here math-verify would run sympy
      ``simplify(a - b)``, which only succeeds for an identically constant expression such as ``\\sin^2x+\\cos^2x``;
      we accept that (rare) difference.
    """
    if a.exact_rational and b.exact_rational:
        return True
    (ka, va), (kb, vb) = _kind(a, timeout_s), _kind(b, timeout_s)
    if ka == kb == "num":
        return all(abs(x - y) > 1e-5 + 1e-9 * max(abs(x), abs(y)) for x in va for y in vb)
    return {ka, kb} in ({"num", "sym"}, {"num", "set"})


def matches_gold(gold: Canonical, pred: Canonical, timeout_s: int | None = DEFAULT_TIMEOUT_S) -> bool:
    """True if ``pred`` is a correct answer for ``gold``: same key, or ``verify(gold, pred)`` (one direction)."""
    if gold.key == pred.key:
        return True
    if _surely_different(gold, pred, timeout_s):
        return False
    pg, pp = parsed(gold, timeout_s), parsed(pred, timeout_s)
    return bool(pg and pp) and _verify(pg, pp, timeout_s)


def math_equivalent(a: Canonical, b: Canonical, timeout_s: int | None = DEFAULT_TIMEOUT_S) -> bool:
    """Semantic equivalence of two math answers: same key, or math-verify in BOTH directions."""
    if a.key == b.key:
        return True
    if _surely_different(a, b, timeout_s):
        return False
    pa, pb = parsed(a, timeout_s), parsed(b, timeout_s)
    return bool(pa and pb) and _verify(pa, pb, timeout_s) and _verify(pb, pa, timeout_s)


# --------------------------------------------------------------------------------------------------- correctness
def is_correct(completion_text: str, gold: str | None, domain: str = "math",
               timeout_s: int | None = DEFAULT_TIMEOUT_S) -> bool | None:
    """Whether the last ``\\boxed{}`` answer of ``completion_text`` matches ``gold``; ``None`` if gold is unusable.

    math: ``verify(parse(gold), parse(answer))`` (see :func:`matches_gold`); a gold wrapped in ``\\boxed{}`` is
    unwrapped first. Other domains: equal :func:`normalize_answer` strings.
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
