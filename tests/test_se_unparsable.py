"""Missing final answers in semantic entropy: the 'shared' and 'exclude' rules, truncation counts, the notes."""

import math

import numpy as np
import pandas as pd
import pytest

from sent.semantic_entropy import answer_quality, answer_quality_note, cluster_answers, score_dataset


def test_cluster_answers_shared_and_exclude():
    answers = ["1/2", "0.5", None, "3", "", None]
    # shared: None, "" and None are one "no answer" cluster, numbered where the first of them appears
    assert cluster_answers(answers) == [0, 0, 1, 2, 1, 1]
    # exclude: they get -1 and the answered ones are numbered 0, 1, ...
    assert cluster_answers(answers, unparsable="exclude") == [0, 0, -1, 1, -1, -1]
    assert cluster_answers(["a", None, "A."], "exact", unparsable="exclude") == [0, -1, 0]
    assert cluster_answers(["cat", " ", "cow"], lambda a, b: a[0] == b[0], unparsable="shared") == [0, 1, 0]
    with pytest.raises(ValueError, match="shared"):
        cluster_answers(["1"], unparsable="singleton")


def _samples(comp: dict[str, list[str]], truncated: dict[str, list[bool]] | None = None) -> pd.DataFrame:
    rows = [{"prompt_id": pid, "sample_id": i, "completion": c, "loglik": -1.0, "n_tokens": 1}
            for pid, cs in comp.items() for i, c in enumerate(cs)]
    df = pd.DataFrame(rows)
    if truncated is not None:
        df["truncated"] = [t for pid in comp for t in truncated[pid]]
    return df


# "cut": 8 answers, all cut before the box closed; "half": 2 answers "2", 2 cut (no answer)
COMP = {"cut": [r"so \boxed{1"] * 4 + ["Let me think"] * 4,
        "half": [r"\boxed{2}", r"\boxed{2}", "Wait,", r"and \boxed{"]}
CUT = {"cut": [True] * 8, "half": [False, False, True, True]}


def test_all_truncated_prompt_is_not_max_entropy():
    shared, per_sample = score_dataset(_samples(COMP, CUT), num_proc=1)
    cut, half = shared.iloc[0], shared.iloc[1]
    # shared: "cut" is one cluster of 8 -> SE 0, not ln 8 = 2.079 as with singletons
    assert cut["se"] == 0.0 and cut["n_clusters"] == 1 and cut["all_no_answer"]
    assert cut["n_no_answer"] == 8 and cut["n_unparsable"] == 8 and cut["n_truncated"] == 8
    # "half": clusters {2, 2}, {none, none} -> p = (1/2, 1/2): SE = ln 2 = 0.693147
    assert half["se"] == pytest.approx(math.log(2)) and half["n_clusters"] == 2 and not half["all_no_answer"]
    assert half["n_no_answer"] == 2 and half["n_truncated"] == 2 and half["n_samples"] == 4
    assert list(per_sample["cluster"]) == [0] * 8 + [0, 0, 1, 1]


def test_exclude_rule_drops_missing_answers():
    excl, per_sample = score_dataset(_samples(COMP, CUT), num_proc=1, unparsable="exclude")
    cut, half = excl.iloc[0], excl.iloc[1]
    # "cut": nothing answered -> SE NaN (also se_weighted), 0 clusters, flagged
    assert math.isnan(cut["se"]) and math.isnan(cut["se_weighted"]) and cut["n_clusters"] == 0
    assert cut["all_no_answer"] and cut["n_samples"] == 8
    # "half": SE over the two answered samples {2, 2} -> 0
    assert half["se"] == 0.0 and half["se_weighted"] == 0.0 and half["n_clusters"] == 1
    assert list(per_sample["cluster"]) == [-1] * 8 + [0, 0, -1, -1]


def test_exclude_weighted_se_uses_answered_samples_only():
    # answers 1, 2, none; logliks -1, -1, -50: the none sample's likelihood must not enter -> P = (1/2, 1/2)
    df = pd.DataFrame({"prompt_id": "p", "completion": [r"\boxed{1}", r"\boxed{2}", "cut"],
                       "loglik": [-1.0, -1.0, -50.0], "n_tokens": [1, 1, 1]})
    per_prompt, _ = score_dataset(df, num_proc=1, unparsable="exclude")
    assert per_prompt["se_weighted"].iloc[0] == pytest.approx(math.log(2))
    assert per_prompt["se"].iloc[0] == pytest.approx(math.log(2))


def test_multiprocess_passes_the_rule():
    df = pd.concat([_samples(COMP).assign(prompt_id=lambda d, k=k: d["prompt_id"] + str(k)) for k in range(40)])
    serial, _ = score_dataset(df, num_proc=1, unparsable="exclude")
    parallel, _ = score_dataset(df, num_proc=2, unparsable="exclude")
    pd.testing.assert_frame_equal(serial, parallel)
    assert "n_truncated" not in serial.columns  # samples without a `truncated` column
    assert np.isnan(serial["se"]).sum() == 40  # every "cut" copy


def test_answer_quality_and_note():
    table, _ = score_dataset(_samples(COMP, CUT), num_proc=1)
    q = answer_quality(table)
    # 12 answers: 10 cut, 10 without a final answer; 2 of 2 prompts have a cut answer
    assert q["n_answers"] == 12 and q["prompts_truncated"] == 2
    assert q["truncated_ratio"] == pytest.approx(10 / 12) and q["no_answer_ratio"] == pytest.approx(10 / 12)
    note = answer_quality_note(table, {"max_new_tokens": 1024, "unparsable": "shared"})
    assert "max_new_tokens=1024: 83.3%" in note and "one shared 'no answer' cluster" in note
    excl, _ = score_dataset(_samples(COMP, CUT), num_proc=1, unparsable="exclude")
    assert "excluded from SE (1 prompts without any answer" in answer_quality_note(excl, {"unparsable": "exclude"})


def test_note_on_an_old_table_says_not_recorded():
    old = pd.DataFrame({"prompt_id": ["a", "b"], "se": [0.0, 1.0], "n_samples": [8, 8], "n_unparsable": [0, 4]})
    q = answer_quality(old)
    assert q["truncated_ratio"] is None and q["prompts_truncated"] is None and q["unparsable_ratio"] == 0.25
    note = answer_quality_note(old, {"equivalence": "math"})
    assert note.count("not recorded") == 3 and "unparsable: 25.0%" in note  # cut, no final answer, rule


def test_command_logs_and_warns_on_truncation(caplog):
    from sent.commands import semantic_entropy as se_cmd

    # 2 prompts x 8 answers: 1 cut answer = 6.25% > 5% -> warning; 0 cut -> no warning
    table = pd.DataFrame({"n_samples": [8, 8], "n_truncated": [1, 0], "n_no_answer": [1, 0], "n_unparsable": [2, 0]})
    meta = {"max_new_tokens": 1024, "unparsable": "shared"}
    with caplog.at_level("INFO", logger=se_cmd.__name__):
        q = se_cmd.log_answer_quality(table, meta)
    assert q["prompts_truncated"] == 1 and q["unparsable_ratio"] == pytest.approx(2 / 16)
    assert "1 of 2 prompts had cut answers; 6.2% of 16 answers cut" in caplog.text
    assert "raise --max-new-tokens to at least the training response length" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger=se_cmd.__name__):
        se_cmd.log_answer_quality(table.assign(n_truncated=0), meta)
    assert "WARNING" not in caplog.text and not [r for r in caplog.records if r.levelname == "WARNING"]


def test_command_flag_and_help():
    from sent.commands import semantic_entropy as se_cmd

    p = se_cmd.build_parser()
    assert p.parse_args([]).unparsable == "shared" and p.parse_args(["--unparsable", "exclude"]).unparsable == "exclude"
    with pytest.raises(SystemExit):
        p.parse_args(["--unparsable", "singleton"])
    assert "max_completion_length" in p.format_help()


def test_command_end_to_end_records_truncation(tmp_path):
    from _tiny import build_tiny_model

    from sent.commands import semantic_entropy as se_cmd
    from sent.io import read_parquet_metadata

    model = str(build_tiny_model(tmp_path / "model"))
    args = ["--root", str(tmp_path), "--model", model, "--n-prompts", "3", "--M", "2", "--max-new-tokens", "4",
            "--chunk-size", "3", "--num-proc", "1", "--template", "Q: {problem} A:", "--threads", "1",
            "--unparsable", "exclude"]
    assert se_cmd.main(args) == 0
    se = pd.read_parquet(tmp_path / "se" / "math.parquet")
    samples = pd.read_parquet(tmp_path / "se" / "math_samples.parquet")
    assert samples["truncated"].dtype == bool
    assert se["n_truncated"].tolist() == samples.groupby("prompt_id", sort=False)["truncated"].sum().tolist()
    assert read_parquet_metadata(tmp_path / "se" / "math.parquet")["unparsable"] == "exclude"
    # a random model with 4 new tokens writes no closed box: every prompt is answer-less, SE NaN under "exclude"
    assert (se["all_no_answer"] == se["se"].isna()).all()
