"""Semantic entropy (SE) of sampled answers: semantic clustering, entropy, dataset scoring.

SENT (arXiv 2512.04359, §3.1) samples M responses per training question from the initial policy, groups them into
semantic-equivalence classes C_1..C_K (for math: "same final answer") and computes

    H_SE(q) = - Σ_k p_k log p_k                                                    (paper Fig. 1)

then sorts the questions by H_SE to build the curriculum (``sent.curriculum``). The paper's SE code is not released;
what is known and unknown is listed in :func:`semantic_entropy`.

Answers are read and compared by :mod:`sent.answers` (the last ``\\boxed{}``; "math" equivalence = math-verify in
BOTH directions, with a parse-once canonicalisation that skips most math-verify calls; see that module).

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

Answers that are present but matched by string only (math-verify cannot parse them, over-long, plain words, costly
to parse: :mod:`sent.answers`) and the missing answers count in ``n_unparsable``; only the missing ones count in
``n_no_answer`` and follow the rule above.

Timeouts: math-verify's ``signal.alarm`` timeouts only work in a process's main thread, so :func:`score_dataset` runs
its workers in separate processes; off the main thread they are disabled (:mod:`sent.answers`).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from sent.answers import (
    DEFAULT_TIMEOUT_S,
    Canonical,
    canonicalize,
    extract_answer,
    matches_gold,
    math_equivalent,
    normalize_answer,
    parsed,
)


logger = logging.getLogger(__name__)

UNPARSABLE_RULES = ("shared", "exclude")  # what happens to answers with no final answer (module docstring)
TRUNCATED_WARN_RATIO = 0.05  # above this share of cut answers `sent semantic-entropy` warns (plan-audit.md finding 4)

Equivalence = str | Callable[[str, str], bool]


# ------------------------------------------------------------------------------------------------------ clustering
def greedy_clusters(items: Sequence, same: Callable[[object, object], bool]) -> list[int]:
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
    key_cluster = dict(zip(keys, greedy_clusters(key_list, lambda a, b: math_equivalent(a, b, timeout_s))))
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
        equivalence: ``"math"`` (math-verify both ways, parse-once canonicalisation: see :mod:`sent.answers`),
            ``"exact"`` (equal :func:`sent.answers.normalize_answer` strings), or a callable
            ``equivalence(a, b) -> bool`` for free text, e.g. bidirectional entailment with an NLI model or cosine
            similarity of embeddings above a threshold (Kuhn et al. 2023; Farquhar et al. 2024). Callables are applied
            greedily, comparing each answer to the first member of each cluster; identical strings are merged without
            calling it.
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
        key_cluster = dict(zip(distinct, greedy_clusters(distinct, lambda a, b: bool(equivalence(a, b)))))
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
