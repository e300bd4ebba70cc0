"""sent.report and sent.report_tables: paper reference tables, pass@k/avg@k aggregation over seeds, loaders and their errors."""

import json

import numpy as np
import pandas as pd
import pytest

from sent import report as R
from sent import report_tables as T
from sent.io import MissingArtifactError


# ---------------------------------------------------------------- paper reference CSVs


@pytest.mark.parametrize("which", ["pass@k", "avg@k"])
def test_paper_table_column_means_match_printed_avg_row(which):
    df = R.load_paper_table(which)
    cells = df[df.benchmark != "Avg."]
    printed = df[df.benchmark == "Avg."].set_index("method")["value"]
    assert cells.groupby("method").size().eq(18).all()  # 6 benchmarks x 3 k
    assert len(printed) == 9  # Base + 8 paper columns
    means = cells.groupby("method")["value"].mean()
    assert (means - printed).abs().max() < 0.01


def test_paper_table_values_and_sic_cell():
    t1 = R.load_paper_table(1)
    row = t1[(t1.benchmark == "AIME25") & (t1.k == 32) & (t1.method == "entropy_bonus")].iloc[0]
    assert row.value == 43.3 and "43.3" in row.note  # printed with one decimal in the paper
    sent = t1[(t1.benchmark == "Avg.") & (t1.method == "sent")].iloc[0]
    assert sent.value == 68.57 and sent.paper_column == "w/ SENT"
    assert (t1.source == "paper (arXiv 2512.04359, Table I, DeepSeek-R1-Distill-Qwen-1.5B)").all()
    t2 = R.load_paper_table("avg@k")
    assert t2[(t2.benchmark == "Avg.") & (t2.method == "grpo")].value.iloc[0] == 34.86
    with pytest.raises(ValueError, match="which="):
        R.load_paper_table("table3")


# ---------------------------------------------------------------- pass@k / avg@k tables


def _eval_rows(run, seed, suite, correct_by_prompt):
    return [dict(run=run, seed=seed, suite=suite, prompt_id=p, sample_id=i, correct=bool(c), length=10)
            for p, cs in correct_by_prompt.items() for i, c in enumerate(cs)]


@pytest.fixture
def eval_df():
    rows = _eval_rows("sent", 0, "toy", {"a": [1, 0, 0, 0], "b": [1, 1, 0, 0]})
    rows += _eval_rows("sent", 1, "toy", {"a": [1, 1, 1, 1], "b": [1, 1, 1, 1]})
    rows += _eval_rows("grpo", 0, "toy", {"a": [0, 0, 0, 1], "b": [0, 0, 0, 0]})
    return pd.DataFrame(rows)


def test_pass_at_k_table_mean_std_over_seeds(eval_df):
    tab = T.pass_at_k_table(eval_df, ks=(2, 8))
    sent2 = tab[(tab.run == "sent") & (tab.suite == "toy") & (tab.k == 2)].iloc[0]
    # seed 0: a: 1 - C(3,2)/C(4,2) = 0.5, b: 1 - C(2,2)/C(4,2) = 5/6 -> 66.67 %; seed 1: 100 %
    assert sent2["mean"] == pytest.approx(250 / 3)
    assert sent2["std"] == pytest.approx(np.std([200 / 3, 100], ddof=1))  # 23.57
    assert sent2["n_seeds"] == 2
    grpo2 = tab[(tab.run == "grpo") & (tab.k == 2) & (tab.suite == "toy")].iloc[0]
    assert grpo2["mean"] == pytest.approx(25.0) and np.isnan(grpo2["std"]) and grpo2["n_seeds"] == 1
    # k = 8 > 4 samples: undefined, never extrapolated
    assert tab[(tab.suite == "toy") & (tab.k == 8)]["mean"].isna().all()


def test_avg_at_k_table_and_avg_row(eval_df):
    tab = T.avg_at_k_table(eval_df, ks=(1, 2))
    s0 = tab[(tab.run == "grpo") & (tab.suite == "toy")].set_index("k")["mean"]
    assert s0[1] == pytest.approx(0.0) and s0[2] == pytest.approx(0.0)  # first k samples of a and b are wrong
    sent = tab[(tab.run == "sent") & (tab.suite == "toy")].set_index("k")["mean"]
    # seed 0 k=2: a [1,0] 0.5, b [1,1] 1.0 -> 75 %; seed 1: 100 % -> mean 87.5
    assert sent[2] == pytest.approx(87.5)
    avg = tab[(tab.run == "sent") & (tab.suite == "Avg.")].iloc[0]
    # "Avg." per seed = mean over (suite, k) cells: seed 0 (100 + 75) / 2, seed 1 100 -> mean 93.75
    assert avg["mean"] == pytest.approx(93.75) and avg["n_seeds"] == 2 and pd.isna(avg["k"])


def test_unequal_sample_counts_rejected():
    df = pd.DataFrame(_eval_rows("sent", 0, "toy", {"a": [1, 0, 0], "b": [1]}))
    with pytest.raises(ValueError, match="different sample counts"):
        T.pass_at_k_table(df, ks=(1,))


def test_comparison_table_labels_ours_paper_mask_and_seeds(eval_df):
    ours = T.pass_at_k_table(eval_df, ks=(2,))
    table = T.comparison_table(ours, R.load_paper_table("pass@k"), ours_label="ours (cpu)", paper_label="paper (1.5B)")
    # our "sent" run is the paper formula: its own column; "w/ SENT" holds the released rule (sent_release)
    # cells: mean [95% interval over problems and seeds] (sent.stats); the interval brackets the mean
    cell = table.loc[("ours (cpu)", "toy", "2"), R.PAPER_COLUMNS["sent"]]
    mean, lo, hi = (float(x) for x in cell.replace("[", "").replace("]", "").replace(",", "").split())
    assert mean == pytest.approx(83.3) and lo <= mean <= hi <= 100.0
    assert table.loc[("ours (cpu)", "toy", "2"), "GRPO"].startswith("25.0 [")
    plain = T.comparison_table(T.pass_at_k_table(eval_df, ks=(2,), intervals=False), None, ours_label="ours (cpu)")
    assert plain.loc[("ours (cpu)", "toy", "2"), R.PAPER_COLUMNS["sent"]] == "83.33 ± 23.57"
    assert plain.loc[("ours (cpu)", "toy", "2"), "GRPO"] == "25.00"  # one seed: no ± shown
    assert table.loc[("ours (cpu)", "toy", "2"), "w/ Mask"] == R.NOT_RUN_NOTE
    assert table.loc[("paper (1.5B)", "Avg.", ""), "w/ SENT"] == "68.57"
    assert table.loc[("paper (1.5B)", "Avg.", ""), R.PAPER_COLUMNS["sent"]] == R.NOT_IN_PAPER
    assert R.seeds_note(1) == "single seed" and R.seeds_note(3) == "mean ± std over 3 seeds"


def test_to_markdown_literal():
    df = pd.DataFrame({"a": [1, None], "b": ["x|y", "z"]})
    assert T.to_markdown(df) == "| a | b |\n|---|---|\n| 1.0 | x\\|y |\n|  | z |\n"


def test_method_names_order_and_colors():
    assert R.order_runs(["sent", "abl_x", "base", "grpo"]) == ["base", "grpo", "sent", "abl_x"]
    assert R.method_label("kl_cov") == "w/ Cov" and R.method_label("abl_stages_3") == "abl_stages_3"
    assert len({R.method_color(m) for m in R.TABLE_ORDER}) == len(R.TABLE_ORDER)


# ---------------------------------------------------------------- loaders and missing artifacts


def test_missing_artifacts_name_the_command(tmp_path):
    root = tmp_path / "cpu"
    root.mkdir()
    with pytest.raises(MissingArtifactError, match=r"bash reproduce/run_all.sh --profile cpu --only train"):
        R.load_runs(root)
    with pytest.raises(MissingArtifactError, match=r"--profile cpu --only eval"):
        R.load_eval(root)
    with pytest.raises(MissingArtifactError, match=r"--only se"):
        R.load_se(root)
    with pytest.raises(MissingArtifactError, match=r"--only curriculum"):
        R.load_curriculum_manifest(root)
    with pytest.raises(MissingArtifactError, match=r"--profile paper-7b --only train"):
        R.read_rollout_step(root, "sent", profile="paper-7b")


def test_loaders_on_fixture_root(tmp_path):
    from _artifacts import build_artifacts

    root = build_artifacts(tmp_path / "cpu", runs=("grpo", "sent"), seeds=(0, 1), n_steps=6, n_samples=4,
                           n_problems=2)
    with open(root / "runs" / "sent" / "seed1" / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "rew')  # a run still writing: torn last line is skipped
    m = R.load_runs(root)
    assert list(m.columns[:3]) == ["run", "seed", "step"] and len(m) == 2 * 2 * 6
    assert R.stage_boundaries(m[(m.run == "sent") & (m.seed == 0)]) == [(4, 2)]
    with pytest.raises(MissingArtifactError, match="--only train"):
        R.load_runs(root, runs=["kl_cov"])
    ev = R.load_eval(root)
    assert set(ev.run) == {"base", "grpo", "sent"} and len(ev) == (2 * 2 + 1) * 2 * 2 * 4  # (runs x seeds + base) x suites x problems x samples = 80
    assert R.recorded_steps(root, "sent") == [3, 6]
    assert set(R.read_rollout_step(root, "sent", step=3).step) == {3}
    with pytest.raises(MissingArtifactError, match="step_000005.parquet"):
        R.read_rollout_step(root, "sent", step=5)
    assert R.load_curriculum_manifest(root)["n_stages"] == 2


def test_stage_boundaries_literal():
    m = pd.DataFrame({"step": [1, 2, 3, 4, 5], "stage": [1, 1, 2, 2, 3]})
    assert R.stage_boundaries(m) == [(3, 2), (5, 3)]
    assert R.stage_boundaries(m.assign(stage=1)) == []
    with pytest.raises(ValueError, match="several runs"):
        R.stage_boundaries(pd.concat([m.assign(run="a"), m.assign(run="b")]))


def test_savefig_and_status_write_files(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = R.savefig(fig, tmp_path, "fig04_entropy_dynamics")
    plt.close(fig)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["pdf"].read_bytes()[:4] == b"%PDF"
    assert paths["png"].parent == tmp_path / "figures"
    status = R.write_status(tmp_path, "x", {"status": "missing artifacts"})
    assert json.loads(status.read_text()) == {"status": "missing artifacts"}
