"""Semantic entropy (SE) of sampled answers: answer extraction, semantic clustering, entropy, dataset scoring.

SENT (arXiv 2512.04359, §3.1) samples M responses per training question from the initial policy, groups them into
semantic-equivalence classes C_1..C_K (for math: "same final answer") and computes

    H_SE(q) = - Σ_k p_k log p_k                                                    (paper Fig. 1)

then sorts the questions by H_SE to build the curriculum (``sent.curriculum``). The paper's SE code is not released;
what is known and unknown is listed in :func:`semantic_entropy`.

Clustering ("math"): two answers are equivalent iff math-verify accepts them in BOTH directions
(``verify(a, b) and verify(b, a)``, peers.md §4-5). To keep this cheap on 17k prompts x 8 answers we canonicalise:

1. every answer gets a cheap key: its exact rational value when it is a plain number (``2``, ``-0.5``, ``3/4``,
   ``\\frac{3}{4}``, ``\\dfrac34``), else its normalised string (``$``, ``\\left``/``\\right``, spaces removed,
   ``\\dfrac``/``\\tfrac`` -> ``\\frac``). Answers with the same key are equivalent without calling math-verify;
2. each distinct non-numeric string is parsed ONCE (``lru_cache`` per process) and the parsed objects are compared;
3. math-verify is only called across *different* keys, and not when the pair surely differs (two different exact
   rationals, two numbers more than ~1e-5 apart, a number vs ``x^2+1`` or vs an interval; see
   :func:`_surely_different`). A decimal such as ``0.3333333`` still goes through math-verify, which matches it to
   ``1/3``.

Greedy clustering as in Farquhar et al. (Nature 2024, ``get_semantic_ids``): each answer is compared to the FIRST
member of every existing cluster in order and joins the first match, else it opens a new cluster. Equivalence that is
not transitive is therefore resolved by order of appearance.

Missing answers (rule ``unparsable``): a completion with no final answer (no ``\\boxed{}``, an unclosed box of a
generation cut at ``max_new_tokens``, an empty box: answer ``None``) is not a meaning of its own. Counting each as a
singleton cluster, as an earlier version did, gives a prompt whose 8 answers were all cut SE = ln 8, and the
curriculum would sort by "did not finish" (plan-audit.md finding 4). Two rules, see :data:`UNPARSABLE_RULES`:

* ``"shared"`` (default): all missing answers of a prompt form ONE shared "no answer" cluster; a prompt with no
  answer at all gets SE 0. SE still counts "did not answer" as one outcome among the others.
* ``"exclude"``: missing answers are dropped (cluster id -1) and SE is computed over the answered samples only; a
  prompt with no answer at all gets SE NaN (``all_no_answer`` is True; ``sent curriculum`` needs those rows dropped).

A non-empty answer math-verify cannot parse, an answer longer than :data:`MAX_ANSWER_CHARS`, or a plain word
(``blah``, ``yes``: math-verify would read it as a product of symbols, so ``blah == halb``) is a real answer: it is
matched by its normalised string only, and so is an answer whose parse would build an astronomically large integer
(``10^{10^{10}}``, ``12345!``: sympy computes those in C where no timeout can stop it). These and the missing answers
count in ``n_unparsable``; only the missing ones count in ``n_no_answer`` and follow the rule above.

Timeouts: math-verify bounds ``parse``/``verify`` with ``signal.alarm``, which only works in a process's main thread.
:func:`score_dataset` runs its workers in separate processes (each in its own main thread). When called from a
non-main thread we disable math-verify's timeouts and rely on the input bounds (answer length cap) instead.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pandas as pd


logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 200  # longer extracted answers are compared by exact string only (never parsed)
MAX_TEXT_CHARS = 100_000  # extract_answer only scans the last this many characters of a completion
DEFAULT_TIMEOUT_S = 5  # math-verify's own default for parse and verify

UNPARSABLE_RULES = ("shared", "exclude")  # what happens to answers with no final answer (module docstring)
TRUNCATED_WARN_RATIO = 0.05  # above this share of cut answers `sent semantic-entropy` warns (plan-audit.md finding 4)

Equivalence = str | Callable[[str, str], bool]

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
    return Canonical(("s", compact), raw, parsable=not (_WORD_RE.match(compact) or _COSTLY_RE.search(compact)))


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


# ------------------------------------------------------------------------------------------------------ clustering
def _greedy(items: Sequence, same: Callable[[object, object], bool]) -> list[int]:
    """Greedy clustering: compare each item to the first member of each existing cluster (Farquhar et al. 2024)."""
    reps: list = []
    ids: list[int] = []
    for item in items:
        for cid, rep in enumerate(reps):
            if same(rep, item):
                ids.append(cid)
                break
        else:
            ids.append(len(reps))
            reps.append(item)
    return ids


def _check_unparsable(unparsable: str) -> None:
    if unparsable not in UNPARSABLE_RULES:
        raise ValueError(f"unparsable={unparsable!r} is not valid; use one of {list(UNPARSABLE_RULES)}")


def _number(labels: Sequence, unparsable: str) -> list[int]:
    """Cluster ids from 0 in order of first appearance. A ``None`` label is a missing answer: all of them share one
    cluster (``"shared"``) or get -1 (``"exclude"``)."""
    ids, remap = [], {}
    for label in labels:
        if label is None and unparsable == "exclude":
            ids.append(-1)
        else:
            ids.append(remap.setdefault(label, len(remap)))
    return ids


def _cluster_math(answers: Sequence[str | None], timeout_s: int | None,
                  unparsable: str = "shared") -> tuple[list[int], list[bool], list]:
    """Cluster ids, unparsable flags and canonical forms (``None`` = no answer) of a group of math answers."""
    canon = [canonicalize(a) for a in answers]
    keys: dict[tuple, Canonical] = {}
    for c in canon:
        if c is not None and c.key not in keys:
            keys[c.key] = c
    key_list = list(keys.values())
    key_cluster = dict(zip(keys, _greedy(key_list, lambda a, b: math_equivalent(a, b, timeout_s))))
    ids = _number([None if c is None else key_cluster[c.key] for c in canon], unparsable)
    bad = [c is None or not (c.key[0] == "q" or parsed(c, timeout_s)) for c in canon]
    return ids, bad, canon


def _answer_keys(answers: Sequence[str | None], equivalence: Equivalence) -> list[str | None]:
    """Matching key of each answer for ``"exact"`` or a callable; ``None`` = no answer."""
    if equivalence == "exact":
        return [normalize_answer(a) or None if isinstance(a, str) else None for a in answers]
    if callable(equivalence):
        return [a if isinstance(a, str) and a.strip() else None for a in answers]
    raise ValueError(f"equivalence={equivalence!r} is not valid; use 'math', 'exact' or a callable (a, b) -> bool")


def cluster_answers(answers: Sequence[str | None], equivalence: Equivalence = "math",
                    timeout_s: int | None = DEFAULT_TIMEOUT_S, unparsable: str = "shared") -> list[int]:
    """Semantic cluster id of each answer, numbered from 0 in order of first appearance.

    Args:
        answers: extracted final answers (``None`` or empty = no answer, handled by ``unparsable``).
        equivalence: ``"math"`` (math-verify both ways, parse-once canonicalisation: see the module docstring),
            ``"exact"`` (equal :func:`normalize_answer` strings), or a callable ``equivalence(a, b) -> bool`` for free
            text, e.g. bidirectional entailment with an NLI model or cosine similarity of embeddings above a threshold
            (Kuhn et al. 2023; Farquhar et al. 2024). Callables are applied greedily, comparing each answer to the
            first member of each cluster; identical strings are merged without calling it.
        timeout_s: math-verify timeout per call (disabled automatically off the main thread).
        unparsable: ``"shared"`` (all missing answers form one "no answer" cluster) or ``"exclude"`` (they get
            cluster id -1 and are left out of SE); see the module docstring.

    Example: ``cluster_answers(["1/2", "0.5", "\\\\frac{2}{4}", None, "3", None])`` -> ``[0, 0, 0, 1, 2, 1]``;
    with ``unparsable="exclude"`` -> ``[0, 0, 0, -1, 1, -1]``.
    """
    _check_unparsable(unparsable)
    answers = list(answers)
    if equivalence == "math":
        return _cluster_math(answers, timeout_s, unparsable)[0]
    keys = _answer_keys(answers, equivalence)
    distinct = list(dict.fromkeys(k for k in keys if k))  # identical strings are always one cluster
    if callable(equivalence):
        key_cluster = dict(zip(distinct, _greedy(distinct, lambda a, b: bool(equivalence(a, b)))))
    else:
        key_cluster = {k: i for i, k in enumerate(distinct)}
    return _number([None if k is None else key_cluster[k] for k in keys], unparsable)


# --------------------------------------------------------------------------------------------------------- entropy
def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.sum(np.exp(x - m))))


def semantic_entropy(cluster_ids: Sequence[int], log_likelihoods: Sequence[float] | None = None,
                     lengths: Sequence[int] | None = None) -> float:
    """Semantic entropy of one prompt's M samples, in nats (natural log).

    Discrete (default; Farquhar et al. 2024 ``cluster_assignment_entropy``):
        p_c = n_c / M,  SE = - Σ_c p_c log p_c        e.g. 4 identical answers -> 0, 4 distinct -> log 4.

    Likelihood-weighted (SENT §3.1 as summarised: P(C_i|q) = Σ_{o∈C_i} P(o|q), normalised over clusters; Nature 2024
    reference ``predictive_entropy_rao`` with ``logsumexp_by_id(agg="sum_normalized")``):
        ℓ_i = loglik_i / length_i (length-normalised when ``lengths`` is given, else the raw sequence log-lik),
        log P_c = logsumexp_{i∈c} ℓ_i - logsumexp_i ℓ_i,   SE = - Σ_c P_c log P_c.

    What the paper uses is UNKNOWN (paper.md §1.2): the figure's ``p_k`` fits both forms; M, whether P(o|q) is
    length-normalised, and the log base are not stated. We default to the discrete form in nats (it needs no
    likelihoods, is unaffected by sampling temperature, and is bounded by log M); ``se_weighted`` is reported too.
    """
    ids = np.asarray(cluster_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"cluster_ids must be a non-empty 1-D sequence of ints, got shape {ids.shape}")
    if log_likelihoods is None:
        if lengths is not None:
            raise ValueError("lengths was given without log_likelihoods; pass both or neither")
        _, counts = np.unique(ids, return_counts=True)
        p = counts / ids.size
        return float(max(0.0, -np.sum(p * np.log(p))))
    ll = np.asarray(log_likelihoods, dtype=np.float64)  # (M,)
    if ll.shape != ids.shape:
        raise ValueError(f"log_likelihoods has shape {ll.shape} but cluster_ids has {ids.shape}; give one per sample")
    if np.isnan(ll).any():
        raise ValueError("log_likelihoods contains NaN; drop those samples or use the discrete form (None)")
    if lengths is not None:
        lens = np.asarray(lengths, dtype=np.float64)
        if lens.shape != ids.shape or (lens <= 0).any():
            raise ValueError("lengths must be positive token counts, one per sample (same length as cluster_ids)")
        ll = ll / lens
    total = _logsumexp(ll)
    if not math.isfinite(total):
        raise ValueError("log_likelihoods are all -inf (or +inf); the cluster probabilities are undefined")
    log_p = np.array([_logsumexp(ll[ids == c]) - total for c in np.unique(ids)])
    return float(max(0.0, -np.sum(np.exp(log_p) * log_p)))


# ------------------------------------------------------------------------------------------------- dataset scoring
def _score_group(answers: list, gold: str | None, equivalence: Equivalence, timeout_s: int | None,
                 unparsable: str = "shared") -> tuple[list[int], list[bool], list[bool], list | None]:
    """Cluster ids, no-answer flags, unparsable flags and (when ``gold`` is given) per-answer correctness of one
    prompt."""
    if equivalence == "math":
        ids, bad, canon = _cluster_math(answers, timeout_s, unparsable)
        missing = [c is None for c in canon]
    else:
        ids = cluster_answers(answers, equivalence, timeout_s, unparsable)
        missing = [k is None for k in _answer_keys(answers, equivalence)]
        bad = missing
        canon = [canonicalize(a) for a in answers]
    if gold is None:
        return ids, missing, bad, None
    g = canonicalize(extract_answer(gold) or gold)
    if g is None:
        return ids, missing, bad, None
    correct, memo = [], {}
    for c in canon:
        if c is None:
            correct.append(False)
            continue
        if c.key not in memo:
            memo[c.key] = (matches_gold(g, c, timeout_s) if equivalence == "math"
                           else normalize_answer(c.raw) == normalize_answer(g.raw))
        correct.append(memo[c.key])
    return ids, missing, bad, correct


def _score_chunk(chunk: list[tuple[list, str | None]], equivalence: Equivalence, timeout_s: int | None,
                 unparsable: str) -> list:
    return [_score_group(answers, gold, equivalence, timeout_s, unparsable) for answers, gold in chunk]


def _run_groups(groups: list[tuple[list, str | None]], equivalence: Equivalence, num_proc: int,
                timeout_s: int | None, unparsable: str = "shared") -> list:
    """Score all groups, in ``num_proc`` worker processes by chunks of prompts, with a tqdm bar."""
    from tqdm.auto import tqdm

    if num_proc > 1 and callable(equivalence):
        try:
            pickle.dumps(equivalence)
        except Exception:
            logger.warning("equivalence callable is not picklable; scoring in this process (num_proc=1)")
            num_proc = 1
    if num_proc <= 1 or len(groups) < 64:
        return [_score_group(a, g, equivalence, timeout_s, unparsable)
                for a, g in tqdm(groups, desc="semantic entropy", unit="prompt", mininterval=2)]
    if equivalence == "math":
        import math_verify  # noqa: F401  (imported once here, inherited by forked workers)
    size = max(1, min(500, len(groups) // (num_proc * 8)))
    starts = range(0, len(groups), size)
    results: list = [None] * len(starts)
    with ProcessPoolExecutor(max_workers=num_proc) as pool, \
            tqdm(total=len(groups), desc="semantic entropy", unit="prompt", mininterval=2) as bar:
        futures = {pool.submit(_score_chunk, groups[s:s + size], equivalence, timeout_s, unparsable): i
                   for i, s in enumerate(starts)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            bar.update(len(results[i]))
    return [r for chunk in results for r in chunk]


def score_dataset(samples: pd.DataFrame, equivalence: Equivalence = "math", num_proc: int | None = None,
                  gold: dict | None = None, timeout_s: int | None = DEFAULT_TIMEOUT_S, unparsable: str = "shared"
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-prompt semantic entropy of a table of sampled completions.

    Args:
        samples: one row per sampled completion with columns ``prompt_id``, ``completion`` and optionally
            ``loglik`` (sum of token log-probs), ``n_tokens`` (for length-normalised ``se_weighted``) and
            ``truncated`` (bool: the completion hit ``max_new_tokens`` without an EOS).
        equivalence: see :func:`cluster_answers`.
        num_proc: worker processes (``None`` = ``os.cpu_count()``); small inputs run in-process.
        gold: optional ``{prompt_id: gold answer}``; adds ``n_correct``/``accuracy`` and a per-sample ``correct``.
        timeout_s: math-verify timeout per call in the workers (``None`` disables it).
        unparsable: ``"shared"`` or ``"exclude"``: what missing answers do to SE (module docstring).

    Returns:
        ``(per_prompt, per_sample)``. ``per_prompt`` (first-appearance order): ``prompt_id, se, se_weighted,
        n_clusters, n_samples, n_unparsable, n_no_answer, all_no_answer`` (+ ``n_truncated`` when ``samples`` has
        ``truncated``; + ``n_correct, accuracy``, NaN for prompts missing from ``gold``). With ``"exclude"``, SE and
        ``n_clusters`` count the answered samples only, and SE is NaN when ``all_no_answer``. ``per_sample``:
        ``samples`` with ``answer`` and ``cluster`` (-1 = excluded) (+ ``correct``, nullable bool) added.
    """
    if not isinstance(samples, pd.DataFrame):
        raise ValueError(f"samples must be a pandas DataFrame, got {type(samples).__name__}")
    for col in ("prompt_id", "completion"):
        if col not in samples.columns:
            raise ValueError(f"samples is missing column {col!r}; columns are {list(samples.columns)}")
    if num_proc is not None and num_proc < 1:
        raise ValueError(f"num_proc must be >= 1 or None, got {num_proc}")
    _check_unparsable(unparsable)
    num_proc = num_proc or os.cpu_count() or 1
    out = samples.reset_index(drop=True).copy()
    out["answer"] = [extract_answer(c) for c in out["completion"]]
    codes, uniques = pd.factorize(out["prompt_id"], sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    rows = [order[bounds[p]:bounds[p + 1]] for p in range(len(uniques))]  # row indices of each prompt
    answers = out["answer"].tolist()
    groups = [([answers[i] for i in r], None if gold is None else gold.get(pid)) for pid, r in zip(uniques, rows)]
    results = _run_groups(groups, equivalence, num_proc, timeout_s, unparsable)

    has_ll = "loglik" in out.columns
    ll = out["loglik"].to_numpy(dtype=np.float64) if has_ll else None
    lens = out["n_tokens"].to_numpy(dtype=np.float64) if has_ll and "n_tokens" in out.columns else None
    cut = out["truncated"].to_numpy(dtype=bool) if "truncated" in out.columns else None
    cluster = np.zeros(len(out), dtype=np.int64)
    correct = pd.array([pd.NA] * len(out), dtype="boolean")  # NA where the prompt has no (parsable) gold
    table = []
    for pid, r, (ids, missing, bad, corr) in zip(uniques, rows, results):
        cluster[r] = ids
        ids = np.asarray(ids)
        kept = r[ids >= 0]  # rows that enter SE: all of them, or the answered ones under "exclude"
        ids = ids[ids >= 0]
        se, se_w = float("nan"), float("nan")
        if ids.size:
            se = semantic_entropy(ids)
            if ll is not None and np.isfinite(ll[kept]).all():
                se_w = semantic_entropy(ids, ll[kept], None if lens is None else np.maximum(lens[kept], 1))
        rec = {"prompt_id": pid, "se": se, "se_weighted": se_w, "n_clusters": len(set(ids.tolist())),
               "n_samples": len(r), "n_unparsable": int(sum(bad)), "n_no_answer": int(sum(missing)),
               "all_no_answer": bool(all(missing))}
        if cut is not None:
            rec["n_truncated"] = int(cut[r].sum())
        if gold is not None:
            if corr is not None:
                correct[r] = np.asarray(corr, dtype=bool)
            rec["n_correct"] = int(sum(corr)) if corr is not None else pd.NA
            rec["accuracy"] = float(np.mean(corr)) if corr is not None else float("nan")
        table.append(rec)
    out["cluster"] = cluster
    if gold is not None:
        out["correct"] = correct
    per_prompt = pd.DataFrame(table)
    if gold is not None and len(per_prompt):
        per_prompt["n_correct"] = per_prompt["n_correct"].astype("Int64")
    return per_prompt, out


# ------------------------------------------------------------------------------------------------ answer quality
def answer_quality(table: pd.DataFrame) -> dict:
    """How many of the sampled answers behind a per-prompt SE table were cut or had no final answer.

    Returns ``n_prompts``, ``n_answers``, ``prompts_truncated`` (prompts with at least one cut answer) and the shares
    of all answers ``truncated_ratio``, ``no_answer_ratio``, ``unparsable_ratio``. A value is ``None`` when the
    table lacks its column (tables written before ``n_truncated``/``n_no_answer`` existed).
    """
    n_answers = int(table["n_samples"].sum()) if "n_samples" in table.columns else 0

    def ratio(col: str) -> float | None:
        return float(table[col].sum() / n_answers) if col in table.columns and n_answers else None

    return {"n_prompts": len(table), "n_answers": n_answers,
            "prompts_truncated": int((table["n_truncated"] > 0).sum()) if "n_truncated" in table.columns else None,
            "truncated_ratio": ratio("n_truncated"), "no_answer_ratio": ratio("n_no_answer"),
            "unparsable_ratio": ratio("n_unparsable")}


def answer_quality_note(table: pd.DataFrame, meta: dict) -> str:
    """One line for the SE figure: shares of cut, answer-less and unparsable answers and the missing-answer rule
    (``meta`` = the SE table's ``sent`` metadata); "not recorded" where an older table lacks a column or key."""
    q = answer_quality(table)

    def pct(v: float | None) -> str:
        return "not recorded" if v is None else f"{100 * v:.1f}%"

    budget = meta.get("max_new_tokens")
    n_none = int(table["all_no_answer"].sum()) if "all_no_answer" in table.columns else 0
    rule = {"shared": "one shared 'no answer' cluster",
            "exclude": f"excluded from SE ({n_none} prompts without any answer have no SE and are not drawn)"}.get(
        meta.get("unparsable"), "not recorded (older tables: each its own cluster)")
    return (f"answers cut at {f'max_new_tokens={budget}' if budget else 'the token budget'}: "
            f"{pct(q['truncated_ratio'])}; "
            f"no final answer: {pct(q['no_answer_ratio'])}; unparsable: {pct(q['unparsable_ratio'])}; "
            f"missing answers: {rule}")
