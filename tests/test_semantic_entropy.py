import math
import threading
import time

import numpy as np
import pandas as pd
import pytest

from sent.answers import MAX_ANSWER_CHARS, canonicalize
from sent.semantic_entropy import cluster_answers, score_dataset, semantic_entropy


def test_math_equivalent_answers_cluster():
    # 1/2, 0.5, \frac{1}{2}, \frac{2}{4} -> 0 ; 3/4, 0.75, \dfrac34 -> 1 ; 7 -> 2
    ids = cluster_answers(["1/2", "0.5", r"\frac{1}{2}", r"\frac{2}{4}", "3/4", "0.75", r"\dfrac34", "7"])
    assert ids == [0, 0, 0, 0, 1, 1, 1, 2]


def test_math_non_equivalent_and_decimal_rounding():
    assert cluster_answers(["1", "2", "-1", "1/3"]) == [0, 1, 2, 3]
    assert cluster_answers(["1/3", "0.3333333", "0.333"]) == [0, 0, 1]  # math-verify rounds to 6 digits
    assert cluster_answers([r"10\%", "0.1", r"x^{2}+1", "x^2+1"]) == [0, 0, 1, 1]


def test_costly_inputs_are_not_parsed():
    start = time.perf_counter()
    ids = cluster_answers([r"10^{10^{10}}", r"9^{9^{9^{9}}}", "12345!", r"10^{10^{10}}", "5"])
    assert ids == [0, 1, 2, 0, 3] and time.perf_counter() - start < 10  # parsing them would take minutes
    assert not canonicalize(r"9^{9^{9^{9}}}").parsable


def test_none_and_garbage_never_crash():
    garbage = [None, "", "}{", r"\frac{", "blah", "halb", "blah", "x" * (MAX_ANSWER_CHARS + 5), "1/0", "∞∞", "$$"]
    ids = cluster_answers(garbage)
    # None, "" and "$$" (no answer) share one cluster; blah/halb differ (words are matched by string, not as a*b*h*l)
    assert ids[0] == ids[1] == ids[-1] and ids[4] == ids[6] and ids[4] != ids[5] and ids[-1] not in ids[2:-1]
    assert ids[0] == 0 and max(ids) == len(set(ids)) - 1  # numbered from 0 in order of first appearance


def test_exact_and_callable_equivalence():
    assert cluster_answers(["The Answer.", "the answer", r"$\text{The answer}$", None, "b"], "exact") == [0, 0, 0, 1, 2]
    calls = []

    def same_first_letter(a, b):
        calls.append((a, b))
        return a[0] == b[0]

    assert cluster_answers(["cat", "cow", "dog", "cat"], same_first_letter) == [0, 0, 1, 0]
    assert ("cat", "cat") not in calls  # identical strings are merged without calling it
    with pytest.raises(ValueError, match="equivalence"):
        cluster_answers(["1"], "nli")


def test_math_works_off_main_thread():
    out = {}
    # 1/3 vs 0.3333333 needs math-verify (different keys); signal.alarm timeouts must be off in a thread
    t = threading.Thread(target=lambda: out.setdefault("ids", cluster_answers(["1/3", "0.3333333", "2"])))
    t.start()
    t.join()
    assert out["ids"] == [0, 0, 1]


def test_discrete_semantic_entropy():
    assert semantic_entropy([0, 0, 0, 0]) == 0.0  # 4 identical
    assert semantic_entropy([0, 1, 2, 3]) == pytest.approx(math.log(4))  # 4 distinct
    # p = (3/4, 1/4): -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562335
    assert semantic_entropy([0, 0, 0, 1]) == pytest.approx(0.5623351446)


def test_weighted_semantic_entropy_by_hand():
    # logliks -1, -2 (cluster 0), -3 (cluster 1); lengths 1, 2, 3 -> ℓ = -1, -1, -1 -> P = (2/3, 1/3)
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))  # 0.636514
    assert semantic_entropy([0, 0, 1], [-1.0, -2.0, -3.0], [1, 2, 3]) == pytest.approx(expected)
    # unnormalised: w = e^-1, e^-2, e^-3 -> P0 = (e^-1+e^-2)/(e^-1+e^-2+e^-3) = 0.9094
    p0 = (math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    hand = -(p0 * math.log(p0) + (1 - p0) * math.log(1 - p0))
    assert semantic_entropy([0, 0, 1], [-1.0, -2.0, -3.0]) == pytest.approx(hand)


def test_semantic_entropy_bad_input():
    with pytest.raises(ValueError, match="cluster_ids"):
        semantic_entropy([])
    with pytest.raises(ValueError, match="log_likelihoods"):
        semantic_entropy([0, 1], [-1.0])
    with pytest.raises(ValueError, match="lengths"):
        semantic_entropy([0, 1], lengths=[1, 2])
    with pytest.raises(ValueError, match="lengths"):
        semantic_entropy([0, 1], [-1.0, -1.0], [0, 2])


def _samples():
    comp = {"a": [r"\boxed{1/2}", r"so \boxed{0.5}", "no box", r"\boxed{2}"],
            "b": [r"\boxed{3}"] * 4}
    rows = [(pid, i, c, -float(i + 1), i + 1) for pid, cs in comp.items() for i, c in enumerate(cs)]
    return pd.DataFrame(rows, columns=["prompt_id", "sample_id", "completion", "loglik", "n_tokens"])


def test_score_dataset_tables():
    per_prompt, per_sample = score_dataset(_samples(), num_proc=1, gold={"a": r"\frac{1}{2}", "b": "4"})
    a, b = per_prompt.iloc[0], per_prompt.iloc[1]
    assert list(per_prompt["prompt_id"]) == ["a", "b"]
    # a: clusters {1/2, 0.5}, {None}, {2} -> p = (1/2, 1/4, 1/4): SE = 1.5 ln 2 = 1.039721
    assert a["se"] == pytest.approx(1.5 * math.log(2)) and a["n_clusters"] == 3 and a["n_unparsable"] == 1
    assert a["n_correct"] == 2 and a["accuracy"] == 0.5
    # length-normalised ℓ = -1 for every sample -> same as discrete
    assert a["se_weighted"] == pytest.approx(1.5 * math.log(2))
    assert b["se"] == 0.0 and b["n_correct"] == 0 and b["n_samples"] == 4
    assert list(per_sample["cluster"]) == [0, 0, 1, 2, 0, 0, 0, 0]
    assert per_sample["answer"].iloc[1] == "0.5" and pd.isna(per_sample["answer"].iloc[2])
    assert list(per_sample["correct"]) == [True, True, False, False] + [False] * 4


def test_score_dataset_multiprocess_matches_serial():
    df = pd.concat([_samples().assign(prompt_id=lambda d, k=k: d["prompt_id"] + str(k)) for k in range(40)])
    serial, _ = score_dataset(df, num_proc=1)
    parallel, samples = score_dataset(df, num_proc=2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert "correct" not in samples.columns and np.isnan(parallel["se_weighted"]).sum() == 0


def test_score_dataset_missing_column():
    with pytest.raises(ValueError, match="completion"):
        score_dataset(pd.DataFrame({"prompt_id": ["a"]}))
