"""The figure standard (docs/FIGURES-STYLE.md) on the plotting functions, with small synthetic inputs.

Each class of defect a machine can see has a test that fails when it comes back: a run on another x unit than the
others, a curriculum run without its stage lines, text outside the figure, a legend over the data, an empty panel
without a note, a negative Pass@k axis, special tokens in token figures, a truncated table. The checks themselves
(:mod:`sent.figure_checks`) are tested on figures made to fail them. Numbers here are test data.
"""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sent import figure_checks as F
from sent import report as R
from sent import report_plots as P
from sent import report_tables as T
from sent import report_tokens as RT


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _metrics(run, seed=0, batches=10, updates=2, stage_at=None, key_values=None):
    """metrics.jsonl rows of one run as the trainer logs them: ``updates`` optimizer steps per generation batch,
    ``reward`` on the first update of each batch only (TRL), ``stage`` switching at batch ``stage_at``."""
    rows = []
    for step in range(1, batches * updates + 1):
        batch = (step - 1) // updates + 1
        rows.append({"run": run, "seed": seed, "step": step,
                     "stage": 1 if stage_at is None or batch < stage_at else 2,
                     "entropy/all": 0.4 - 0.01 * batch + 0.001 * seed,
                     "reward": 0.1 * batch if (step - 1) % updates == 0 else None,
                     **({} if key_values is None else {"x": key_values})})
    return pd.DataFrame(rows)


def _loaded(*frames, updates=None):
    """As sent.report.load_runs returns them: with generation_batch (from the config's updates when given)."""
    out = []
    for f in frames:
        for _, g in f.groupby(["run", "seed"]):
            out.append(R.add_generation_batches(g, updates.get(g.run.iat[0]) if updates else None))
    return pd.concat(out, ignore_index=True)


def _series(ax):
    return {line.get_label(): line for line in ax.get_lines() if not str(line.get_gid() or "").startswith("stage")
            and not line.get_label().startswith("_")}


# ------------------------------------------------------------------------------------------------ x unit

def test_runs_with_different_updates_per_batch_share_the_generation_batch_axis():
    # grpo: 2 updates per generation batch (20 steps), sent: 1 update per batch (10 steps): both ran 10 batches
    m = _loaded(_metrics("grpo", updates=2), _metrics("sent", updates=1), updates={"grpo": 2, "sent": 1})
    fig = P.plot_curves(m, "entropy/all", "token entropy (nats/token)")
    ax = fig.axes[0]
    ends = {label: float(np.nanmax(line.get_xdata())) for label, line in _series(ax).items()}
    assert ends == {"GRPO": 10.0, "SENT (formula)": 10.0}, f"runs plotted on different x units: {ends}"
    assert ax.get_xlabel().startswith(R.X_UNIT)
    assert F.figure_problems(fig) == []


def test_a_run_with_fewer_seeds_than_the_title_says_so_in_its_label():
    m = _loaded(*(_metrics("sent", seed=s) for s in range(3)), _metrics("abl_lowkl_only", seed=0))
    fig = P.plot_curves(m, "entropy/all", "token entropy (nats/token)")
    ax = fig.axes[0]
    assert "mean ± std over 3 seeds" in ax.get_title()
    labels = sorted(_series(ax))
    assert any(label.endswith("(single seed)") for label in labels), labels
    assert not any(label.startswith("SENT (formula)") and "seed" in label for label in labels), labels


def test_generation_batches_from_the_config_or_from_the_reward_lines():
    m = _metrics("grpo", batches=3, updates=2)
    assert R.add_generation_batches(m, 2)["generation_batch"].tolist() == [1, 1, 2, 2, 3, 3]
    # no config: TRL logs the reward once per generation batch, on its first update
    assert R.add_generation_batches(m)["generation_batch"].tolist() == [1, 1, 2, 2, 3, 3]
    cfg = {"config": {"steps_per_generation": 4, "num_iterations": 1, "gradient_accumulation_steps": 2}}
    assert R.updates_per_generation(cfg) == 2 and R.updates_per_generation({"script": {}}) is None
    assert R.updates_per_generation({"config": {"num_iterations": 2, "steps_per_generation": None}}) == 2


# ------------------------------------------------------------------------------------------------ stage lines

def test_every_curriculum_run_gets_its_stage_lines_in_its_colour():
    m = _loaded(_metrics("sent", stage_at=5), _metrics("sent_release", stage_at=5), _metrics("abl_x", stage_at=7),
                _metrics("grpo"))
    fig = P.plot_curves(m, "entropy/all", "token entropy (nats/token)")
    ax = fig.axes[0]
    stage_lines = [line for line in ax.get_lines() if str(line.get_gid() or "").startswith("stage")]
    found = {(line.get_gid().split(":")[1], float(line.get_xdata()[0])): line.get_color() for line in stage_lines}
    for run, batch in (("sent", 5), ("sent_release", 5), ("abl_x", 7)):
        key = (run, batch - 0.5)
        assert key in found, f"no stage line for curriculum run {run} at batch {batch}: {sorted(found)}"
        assert matplotlib.colors.to_hex(found[key]) == R.method_color(run)
    assert not any(run == "grpo" for run, _ in found)  # no stages, no line
    assert F.figure_problems(fig) == []


# ------------------------------------------------------------------------------------------------ the checks

def test_check_finds_text_outside_the_figure_and_a_legend_over_the_data():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="a")
    ax.legend(loc="center")
    ax.set_title("a title far too long to fit in a figure only four inches wide, so it is cut at both ends")
    problems = F.figure_problems(fig)
    assert any("outside the figure" in p for p in problems)
    assert any("legend overlaps" in p for p in problems)


def test_check_finds_an_empty_panel_without_a_note_and_accepts_one_with():
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3), layout="constrained")
    a.plot([0, 1], [np.nan, np.nan])
    b.plot([0, 1], [np.nan, np.nan])
    P.add_note(b, "nothing logged")
    problems = F.figure_problems(fig)
    assert len([p for p in problems if "no finite data" in p]) == 1


def test_check_finds_small_text_wide_figures_and_special_tokens():
    fig, ax = plt.subplots(figsize=(17, 3), layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.text(0.5, 0.5, "</s>", fontsize=5)
    problems = F.figure_problems(fig)
    assert any("px wide" in p for p in problems) and any("< 7 pt" in p for p in problems)
    assert any("special token" in p for p in problems)


# ------------------------------------------------------------------------------------------------ the plots

def test_a_run_not_made_or_without_values_is_said_on_the_figure():
    m = _loaded(_metrics("sent", stage_at=5))
    fig = P.plot_curves(m, "entropy/all", "nats/token", runs=["abl_lowkl_only", "sent"],
                        labels={"abl_lowkl_only": "low-entropy KL only"})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "low-entropy KL only: not run" in texts  # the old Fig. 9 showed one series without saying why
    assert F.figure_problems(fig) == []
    nan = _loaded(_metrics("grpo").assign(**{"entropy/all": np.nan}))
    fig = P.plot_curves(nan, "entropy/all", "nats/token")
    assert F.has_note(fig.axes[0]) and F.figure_problems(fig) == []


def test_bands_and_axes_stay_in_the_metric_range():
    curve = pd.DataFrame([dict(run=run, suite=s, k=k, mean=m, std=30.0, n_seeds=3)
                          for run, m0 in (("grpo", 5.0), ("sent", 90.0)) for s in ("toy-a", "toy-b", "toy-c", "toy-d")
                          for k, m in ((1, m0), (2, m0 + 4), (4, m0 + 8))])
    curve.loc[curve.suite == "toy-d", "mean"] = np.nan  # fewer samples than k: a panel with nothing to show
    fig = P.pass_at_k_curves(curve)
    for ax in fig.axes:
        if ax.get_visible() and ax.get_title().startswith("toy"):
            lo, hi = ax.get_ylim()
            assert lo >= 0 and hi <= 100, f"{ax.get_title()}: Pass@k axis {lo}..{hi}"
            for coll in ax.collections:
                ys = np.concatenate([p.vertices[:, 1] for p in coll.get_paths()])
                assert ys.min() >= 0 and ys.max() <= 100
    assert F.figure_problems(fig) == []
    low = _loaded(_metrics("grpo", seed=0), _metrics("grpo", seed=1))
    low["entropy/all"] = np.where(low.seed == 0, 0.001, 0.2)  # mean - sd < 0
    fig = P.plot_curves(low, "entropy/all", "nats/token")
    assert fig.axes[0].get_ylim()[0] >= 0


def test_eval_length_bars_fit_the_readme_width_with_the_legend_outside():
    rows = [dict(run=r, seed=s, suite=f"toy-{i}", length=20 + i) for r in R.TABLE_ORDER for s in (0, 1)
            for i in range(6)]
    fig = P.eval_length_bars(pd.DataFrame(rows))
    assert F.figure_problems(fig) == []


def test_table_figure_shows_every_cell_in_full():
    table = pd.DataFrame({"method": ["w/ SENT (released rule)", "GRPO"],
                          "Pass@k": ["100.0 [100.0, 100.0]", "not run (unidentified)"]})
    fig = P.table_figure(table, "a table")
    texts = {t.get_text() for t in F.drawn_texts(fig)}
    assert {"100.0 [100.0, 100.0]", "not run (unidentified)", "w/ SENT (released rule)"} <= texts
    assert F.figure_problems(fig) == []


# ------------------------------------------------------------------------------------------------ tokens

def _rollout(tokens, entropy, low, high, cov=None, step=1):
    n = len(tokens)
    return {"step": step, "prompt_id": "p", "sample_id": 0, "reward": 1.0, "advantage": 0.5,
            "token_ids": list(range(n)), "tokens": tokens, "logp": [-0.1] * n, "entropy": entropy,
            "covariance": cov if cov is not None else [0.0] * n, "low_entropy": low, "high_cov": high}


def test_token_figures_leave_special_tokens_out():
    row = _rollout([" The", " answer", " is", " 3", "</s>", "<pad>"], [0.1, 0.5, 0.2, 0.9, 0.0, 0.0],
                   [True, False, True, False, True, True], [False, False, True, False, False, False])
    fig = RT.token_heatmap(pd.Series(row))
    assert F.figure_problems(fig) == []
    assert "2 special tokens not shown" in fig.axes[0].get_title()
    counts = RT.token_frequencies(pd.DataFrame([row]), "low_entropy")
    assert counts == {"the": 1, "is": 1}
    # by the tokenizer's own ids: token 2 (" is") declared special is left out too
    assert RT.token_frequencies(pd.DataFrame([row]), "low_entropy", special_ids={2, 4, 5}) == {"the": 1}
    fig = RT.wordcloud_figure(counts, "low-entropy tokens")
    assert F.figure_problems(fig) == []
    fig = RT.wordcloud_figure({}, "high-covariance tokens", empty_reason="no high-covariance token selected")
    assert F.has_note(fig.axes[0]) and F.figure_problems(fig) == []


def test_selection_ties_are_counted_and_said():
    # low-entropy set = the 2 lowest entropies; tokens 1 and 2 tie at 0.2 and order put token 1 in the set
    tied = _rollout(["a", "b", "c", "d"], [0.1, 0.2, 0.2, 0.9], [True, True, False, False], [False] * 4)
    clear = _rollout(["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.9], [True, True, False, False], [False] * 4, step=2)
    ties = RT.selection_ties(pd.DataFrame([tied, clear]), "low_entropy")
    assert ties == {"selected": 4, "tied": 1, "steps_with_ties": [1]}
    assert "1 of 4" in RT.ties_note(ties, "low-entropy") and "recorded step(s) 1" in RT.ties_note(ties, "low-entropy")
    assert RT.ties_note(RT.selection_ties(pd.DataFrame([clear]), "low_entropy")).startswith(
        "decided by ties (selected tokens whose value equals that of a token left out): none")
    fig = RT.token_heatmap(pd.Series(tied), ties=RT.ties_note(ties, "low-entropy"))
    assert "1 of 4" in fig.axes[0].get_title() and F.figure_problems(fig) == []


def test_constant_heat_map_says_the_colour_carries_nothing():
    row = _rollout(["a", "b"], [0.0, 0.0], [True, True], [False, False])
    fig = RT.token_heatmap(pd.Series(row))
    assert F.has_note(fig.axes[0]) and F.figure_problems(fig) == []


# ------------------------------------------------------------------------------------------------ tables

def test_tables_are_markdown_and_html_with_bold_paper_rows_and_one_missing_convention(tmp_path):
    ours = pd.DataFrame([dict(run=r, suite=s, k=k, mean=m, std=1.0, n_seeds=3, lo=m - 5, hi=m + 5)
                         for r, m in (("grpo", 40.0), ("sent_release", 50.0), ("base", 20.0))
                         for s, k in (("toy", 8), ("Avg.", None))])
    ours["k"] = ours["k"].astype("Int64")
    table = T.comparison_table(ours, R.load_paper_table("pass@k"), "ours (cpu)", "paper (1.5B)")
    assert table.loc[("ours (cpu)", "toy", "8"), "w/ Clip"] == R.NOT_RUN  # a paper column we did not run
    assert table.loc[("ours (cpu)", "toy", "8"), "w/ Mask"] == R.NOT_RUN_NOTE
    paths = T.save_table(table, tmp_path, "t1", "Table I")
    md, html = paths["md"].read_text(), paths["html"].read_text()
    assert "| **50.0 [45.0, 55.0]** |" in md  # the best of the row
    assert "| **68.57** |" in md  # the paper's best Avg. (w/ SENT)
    assert "Missing values:" in md and '"unknown" = the paper does not say' in md
    assert "font-weight: bold" in html and "background-color: #eeeeee" in html and "w/ Mask" in html
    assert "…" not in md and "…" not in html  # nothing truncated


def test_bold_covers_cells_whose_interval_reaches_the_best():
    df = pd.DataFrame({"GRPO": ["50.0 [45.0, 55.0]", "60.0"], "w/ SENT": ["48.0 [44.0, 52.0]", "59.0"],
                       "w/ En": ["40.0 [35.0, 45.0]", "not run"]})
    best = T.best_cells(df, ["GRPO", "w/ SENT", "w/ En"], axis="row")
    assert best.loc[0].tolist() == [True, True, False]  # 52 > 45: not told apart; 45 only touches 45
    assert best.loc[1].tolist() == [True, False, False]  # plain numbers: the highest only


# ------------------------------------------------------------------------------------------------ one run

def test_one_run_view_of_any_run_folder(tmp_path):
    from _artifacts import build_artifacts

    from sent import report_run as RR

    root = build_artifacts(tmp_path / "cpu", runs=("grpo",), n_steps=6, n_samples=4, n_problems=2)
    run_dir = root / "runs" / "grpo" / "seed0"
    out = RR.write_report(run_dir, tmp_path / "out")
    assert sorted(out) == ["curves", "heatmap", "wordclouds"] and all(p["png"].exists() for p in out.values())
    view = RR.load_run(run_dir)
    for fig in (RR.curves_figure(view), RR.heatmap_figure(view), RR.wordclouds_figure(view)):
        assert F.figure_problems(fig) == []
    # a folder of rollouts only (e.g. `sent rollouts import` output): the curves say the metrics are missing
    only = tmp_path / "imported"
    only.mkdir()
    for f in (run_dir / "rollouts").iterdir():
        (only / f.name).write_bytes(f.read_bytes())
    view = RR.load_run(only)
    fig = RR.curves_figure(view)
    assert all(F.has_note(ax) for ax in fig.axes if ax.get_title()) and F.figure_problems(fig) == []
    with pytest.raises(R.MissingArtifactError, match="sent train"):
        RR.load_run(tmp_path / "out" / "tables")


def test_one_run_view_of_the_smoke_artifacts(tmp_path):
    from sent import report_run as RR

    run_dir = R.repo_path("artifacts/smoke/runs/sent/seed0")
    if not (run_dir / "metrics.jsonl").exists():
        pytest.skip("no smoke artifacts (bash reproduce/run_all.sh --profile smoke)")
    view = RR.load_run(run_dir)
    assert view.special_ids  # the run's own tokenizer (final/) names its special tokens
    for fig in (RR.curves_figure(view), RR.heatmap_figure(view), RR.wordclouds_figure(view)):
        assert F.figure_problems(fig) == []
