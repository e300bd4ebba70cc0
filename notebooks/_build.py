"""Generate the reproduction notebooks (``python notebooks/_build.py``).

Each notebook = a papermill ``parameters`` cell, then load (sent.report), plot (sent.report_plots), save.
Notebooks never train or sample. Edit the cells here, not the .ipynb files, then re-run this script.
"""

from pathlib import Path

import nbformat


HERE = Path(__file__).resolve().parent

PARAMS = '''root = "artifacts/cpu"  # artifact root (docs/ARCHITECTURE.md)
profile = "cpu"  # profile of that root: names the command that makes a missing artifact
out_dir = "reproduce/out/cpu"  # figures -> <out_dir>/figures, tables -> <out_dir>/tables'''

SETUP = '''import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from sent import report as R
from sent import report_plots as P

logging.basicConfig(level=logging.INFO)
root, out_dir = R.repo_path(root), R.repo_path(out_dir)
print(f"artifacts: {root}\\noutputs:   {out_dir}")'''

TABLE = '''ev = R.load_eval(root, profile=profile)
ours = R.{fn}(ev, ks=tuple(ks))
paper_model = R.paper_reference_for(profile)
paper = R.load_paper_table("{metric}") if paper_model else None
n_seeds = int(ours.loc[ours.run.isin(R.METHODS), "n_seeds"].max()) if ours.run.isin(R.METHODS).any() else 1
table = R.comparison_table(ours, paper, ours_label=f"ours ({{profile}})", paper_label="paper (1.5B)")
caption = (f"{title}. Ours: profile {{profile}}, suites {{sorted(set(ev.suite))}}, {{R.seeds_note(n_seeds)}}; "
           f"paper: {{paper_model or 'no paper numbers known for this model'}}. Our suites are not the paper's "
           "benchmarks, so compare trends between methods, not values. 'w/ Mask' is the paper's column only: "
           "its method is unidentified, so we did not run it.")
print(caption)
R.save_table(table, out_dir, "{name}", caption)
R.save_table(ours.set_index(["run", "suite", "k"]), out_dir, "{name}_ours_long")
fig = P.table_figure(table, f"{title} ({{R.seeds_note(n_seeds)}}); grey rows = paper")
R.savefig(fig, out_dir, "{name}")
table'''


def _table_nb(name, fn, metric, title):
    return [("params", PARAMS + "\nks = [8, 16, 32]  # the paper's k"), ("code", SETUP),
            ("code", TABLE.format(fn=fn, metric=metric, title=title, name=name))]


NOTEBOOKS = {
    "table1_pass_at_k": ("Paper Table I: Pass@k, k in {8, 16, 32}",
                         _table_nb("table1_pass_at_k", "pass_at_k_table", "pass@k",
                                   "Table I: Pass@k (%)")),
    "table2_avg_at_k": ("Paper Table II: Avg@k, k in {8, 16, 32}",
                        _table_nb("table2_avg_at_k", "avg_at_k_table", "avg@k",
                                  "Table II: Avg@k (%)")),
    "entropy_dynamics": ("Paper Figs. 4, 11, 12: policy token entropy per training step", [
        ("params", PARAMS + "\nsmooth = 5  # rolling mean over this many steps, 1 for raw"),
        ("code", SETUP),
        ("code", '''metrics = R.load_runs(root, profile=profile)
methods = [r for r in R.METHODS if r in set(metrics.run)]
print("methods with metrics:", methods)
# Fig. 4 as described (GRPO collapses, w/ En explodes, SENT stays controlled); "w/ SENT" is the released rule
fig = P.plot_curves(metrics, "entropy/all", "token entropy (nats/token)",
                    runs=[r for r in ("grpo", "entropy_bonus", "sent_release", "sent") if r in methods],
                    title="Fig. 4: policy entropy during training", smooth=smooth, mark_stages_of="sent_release")
R.savefig(fig, out_dir, "fig04_entropy_dynamics")'''),
        ("code", '''fig = P.plot_curves(metrics, "entropy/all", "token entropy (nats/token)", runs=methods,
                    title="Figs. 11-12: policy entropy, all methods", smooth=smooth, mark_stages_of="sent")
R.savefig(fig, out_dir, "fig11_12_entropy_dynamics_all_methods")'''),
        ("code", '''fig = P.plot_curves(metrics, "entropy/low", "mean entropy of the low-entropy set (nats/token)",
                    runs=methods, title="Entropy of the low-entropy token set", smooth=smooth,
                    mark_stages_of="sent")
R.savefig(fig, out_dir, "entropy_dynamics_low_entropy_set")'''),
    ]),
    "response_length": ("Response length during training and at evaluation", [
        ("params", PARAMS + "\nsmooth = 5  # rolling mean over this many steps, 1 for raw"),
        ("code", SETUP),
        ("code", '''metrics = R.load_runs(root, profile=profile)
methods = [r for r in R.METHODS if r in set(metrics.run)]
fig = P.plot_curves(metrics, "length/mean", "mean response length (tokens)", runs=methods,
                    title="Response length during training", smooth=smooth, mark_stages_of="sent")
R.savefig(fig, out_dir, "response_length_training")'''),
        ("code", '''ev = R.load_eval(root, profile=profile)
ev = ev[ev.run.isin(["base", *methods])]
fig = P.eval_length_bars(ev)
R.savefig(fig, out_dir, "response_length_eval")
R.save_table(ev.groupby(["run", "suite"])["length"].mean().unstack(), out_dir, "response_length_eval",
             "Mean evaluation response length (tokens), averaged over samples and seeds")'''),
    ]),
    "training_reward": ("Training reward with curriculum-stage boundaries", [
        ("params", PARAMS + "\nsmooth = 5  # rolling mean over this many steps, 1 for raw"),
        ("code", SETUP),
        ("code", '''metrics = R.load_runs(root, profile=profile)
methods = [r for r in R.METHODS if r in set(metrics.run)]
fig = P.plot_curves(metrics, "reward", "mean training reward (per response)", runs=methods,
                    title="Training reward (dotted: SENT curriculum stage starts)", smooth=smooth,
                    mark_stages_of="sent")
R.savefig(fig, out_dir, "training_reward")
one = metrics[(metrics.run == "sent") & (metrics.seed == metrics.seed.min())]
print("SENT stage starts (step, stage):", R.stage_boundaries(one) if len(one) else "sent not run")'''),
    ]),
    "se_distribution": ("Framework figure panel (a): training-set semantic entropy and the curriculum split", [
        ("params", PARAMS + '\ndomain = "math"  # se/<domain>.parquet\ncurriculum = None  # curriculum name, None for the only or first one'),
        ("code", SETUP),
        ("code", '''from sent.io import read_parquet_metadata
from sent.semantic_entropy import answer_quality_note

se = R.load_se(root, domain, profile=profile)
manifest = R.load_curriculum_manifest(root, curriculum, profile=profile)
print(f"{len(se)} prompts; curriculum {manifest['name']!r}: {manifest['n_stages']} stages")
# cut or answer-less samples change SE (plan-audit.md finding 4): say how many there were and the rule used
note = answer_quality_note(se, read_parquet_metadata(root / "se" / f"{domain}.parquet"))
print(note)
fig = P.se_histogram(se, manifest)
fig.text(0.5, -0.02, note.replace("; missing", ";\\nmissing"), ha="center", va="top", fontsize=7)
R.savefig(fig, out_dir, "framework_a_se_histogram")'''),
        ("code", '''fig, rho, p = P.se_vs_level(se)
R.savefig(fig, out_dir, "se_vs_level")
summary = pd.DataFrame([{"domain": domain, "n_prompts": len(se), "spearman_rho": rho, "p_value": p,
                         "mean_se": se.se.mean(), "share_se_zero": (se.se == 0).mean()}]).set_index("domain")
R.save_table(summary, out_dir, "se_vs_level", "Semantic entropy (nats) vs difficulty level, Spearman rank correlation")
summary'''),
    ]),
    "token_heatmap": ("Framework figure panel (b): token entropy of one recorded rollout", [
        ("params", PARAMS + '\nrun = "sent"\nseed = 0\nstep = None  # None for the last recorded step\nsample_index = None  # row of that step (by prompt_id, sample_id); None = the response with most high-cov tokens'),
        ("code", SETUP),
        ("code", '''ro = R.read_rollout_step(root, run, seed, step, profile=profile)
ro = ro.sort_values(["prompt_id", "sample_id"], ignore_index=True)
if sample_index is None:  # the response that shows all three token sets best
    sample_index = int(ro["high_cov"].map(sum).to_numpy().argmax()) if "high_cov" in ro else 0
row = ro.iloc[sample_index]
print(f"run {run} seed {seed} step {row.step}: {len(ro)} responses; showing {row.prompt_id} #{row.sample_id}")
fig = P.token_heatmap(row)
R.savefig(fig, out_dir, "framework_b_token_heatmap")'''),
    ]),
    "token_wordclouds": ("Word clouds of low-entropy and high-covariance tokens (recorded rollouts)", [
        ("params", PARAMS + '\nrun = "sent"\nseed = 0\nsteps = None  # None for every recorded step'),
        ("code", SETUP),
        ("code", '''steps_ = steps if steps is not None else R.recorded_steps(root, run, seed)
ro = pd.concat([R.read_rollout_step(root, run, seed, s, profile=profile) for s in steps_] or
               [R.read_rollout_step(root, run, seed, None, profile=profile)], ignore_index=True)
print(f"{len(ro)} responses from steps {sorted(set(ro.step))}")
counts = {}
for col, title in (("low_entropy", "low-entropy tokens"), ("high_cov", "high-covariance tokens")):
    counts[col] = P.token_frequencies(ro, col)
    fig = P.wordcloud_figure(counts[col], f"{title} ({run}, seed {seed}, {sum(counts[col].values())} tokens)")
    R.savefig(fig, out_dir, f"wordcloud_{col}")
top = pd.DataFrame({col: pd.Series(dict(c.most_common(30))) for col, c in counts.items()}).fillna(0).astype(int)
R.save_table(top, out_dir, "wordcloud_token_counts", "Most frequent tokens per set (counts over recorded steps)")
top.head(15)'''),
    ]),
    "pass_at_k_curves": ("Pass@k for k = 1..32 per method and suite", [
        ("params", PARAMS + "\nk_max = 32"),
        ("code", SETUP),
        ("code", '''ev = R.load_eval(root, profile=profile)
ev = ev[ev.run.isin(["base", *R.METHODS])]
curve = R.pass_at_k_curve(ev, ks=tuple(range(1, k_max + 1)))
R.save_table(curve.set_index(["run", "suite", "k"]), out_dir, "pass_at_k_curves",
             "Pass@k (%), unbiased estimator, mean/std over seeds; NaN where fewer than k samples")
fig = P.pass_at_k_curves(curve)
R.savefig(fig, out_dir, "pass_at_k_curves")'''),
    ]),
    "ablations": ("Ablations: components, number of stages, low-entropy ratio; Fig. 9 dynamics", [
        ("params", PARAMS + "\nks = [8, 16, 32]\nsmooth = 5"),
        ("code", SETUP),
        ("code", '''ev = R.load_eval(root, profile=profile)
pass_tab, avg_tab = R.pass_at_k_table(ev, ks=tuple(ks)), R.avg_at_k_table(ev, ks=tuple(ks))
tables = {}
for group in R.ABLATIONS:
    tables[group] = R.ablation_table(pass_tab, avg_tab, group)
    R.save_table(tables[group], out_dir, f"ablation_{group}",
                 f"Ablation '{group}': mean over suites and k in {ks} (%); the paper's ablation numbers are unknown")
    fig = P.table_figure(tables[group], f"Ablation: {group} (ours; paper numbers unknown)")
    R.savefig(fig, out_dir, f"ablation_{group}")
    display(tables[group])'''),
        ("code", '''metrics = R.load_runs(root, profile=profile)
runs = [r for r in ("abl_lowkl_only", "sent", "abl_lowkl_highcov_nocurr") if r in set(metrics.run)]
labels = {"abl_lowkl_only": "low-entropy KL only", "sent": "low-entropy + high-cov KL (SENT)",
          "abl_lowkl_highcov_nocurr": "low-entropy + high-cov KL, no curriculum"}
fig = P.plot_curves(metrics, "entropy/all", "token entropy (nats/token)", runs=runs, labels=labels,
                    title="Fig. 9: low-entropy only vs low + high-cov", smooth=smooth, mark_stages_of="sent")
R.savefig(fig, out_dir, "fig09_entropy_low_vs_low_highcov")'''),
    ]),
    "paper_scale_tables": ("Tables I and II for a paper-scale profile (GPU artifacts)", [
        ("params", '''root = "artifacts/paper-7b"
profile = "paper-7b"
out_dir = "reproduce/out/paper-7b"
ks = [8, 16, 32]'''),
        ("code", SETUP),
        ("code", '''paper_model = R.paper_reference_for(profile)
try:
    ev = R.load_eval(root, profile=profile)
except R.MissingArtifactError as err:
    print(f"No evaluation artifacts for profile {profile}: {err}")
    R.write_status(out_dir, "paper_scale_tables", {"profile": profile, "status": "missing artifacts",
                   "missing": str(err.path), "command": err.command})
    ev = None
if ev is not None:
    for name, fn, metric in (("table1_pass_at_k", R.pass_at_k_table, "pass@k"),
                             ("table2_avg_at_k", R.avg_at_k_table, "avg@k")):
        ours = fn(ev, ks=tuple(ks))
        paper = R.load_paper_table(metric) if paper_model else None
        table = R.comparison_table(ours, paper, ours_label=f"ours ({profile})", paper_label="paper (1.5B)")
        note = "" if paper_model else f" The paper's numbers for {profile} are not known (reference/paper.md 2.2)."
        R.save_table(table, out_dir, f"{profile}_{name}", f"{metric} (%), profile {profile}.{note}")
        R.savefig(P.table_figure(table, f"{profile}: {metric} (%)"), out_dir, f"{profile}_{name}")
        display(table)
    R.write_status(out_dir, "paper_scale_tables", {"profile": profile, "status": "written"})'''),
    ]),
}


def build(out: Path = HERE) -> list[Path]:
    paths = []
    for name, (title, cells) in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells.append(nbformat.v4.new_markdown_cell(
            f"# {title}\n\nReads saved artifacts only (docs/ARCHITECTURE.md); never trains or samples. "
            "Generated by `notebooks/_build.py`; see `reproduce/FIGURES.md`."))
        nb.cells[0].id = f"{name}-0"  # fixed ids: regenerating gives identical files
        for i, (kind, src) in enumerate(cells, start=1):
            cell = nbformat.v4.new_code_cell(src)
            cell.id = f"{name}-{i}"
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
        path = out / f"{name}.ipynb"
        nbformat.validate(nb)
        path.write_text(nbformat.writes(nb))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print(p)
