"""Write the three analysis notebooks (papermill, tagged ``parameters`` cell) with nbformat.

Run ``python notebooks/_build_analysis.py`` after editing the cells below. The notebooks are thin: they
read what ``sent analyze ...`` wrote under ``<root>/analysis/`` and draw/save figures and tables;
the logic lives in ``analysis/*``.
"""

from pathlib import Path

import nbformat as nbf


HERE = Path(__file__).parent

COMMON = """import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from sent.io import require_artifact

root, out = Path(root), Path(out_dir)
(out / "figures").mkdir(parents=True, exist_ok=True)
(out / "tables").mkdir(parents=True, exist_ok=True)"""

NOTEBOOKS = {
    "analysis_bootstrap.ipynb": (
        "# Bootstrap stability of the covariance estimates and of the high-covariance selection\n"
        "Reads `sent analyze bootstrap` output (see docs/ANALYSIS.md). CV = std/|mean| across bootstrap "
        "replicates; flagged where > 30 %. Jaccard: overlap of a replicate's selected set with the full sample's.",
        'root = "artifacts/cpu"\nout_dir = "reproduce/out/cpu"\nrun = "sent"\nseed = 0',
        [
            """folder = root / "analysis" / "bootstrap" / f"{run}_seed{seed}"
cmd = f"sent analyze bootstrap --rollouts {root}/runs/{run}/seed{seed}"
res = pd.read_parquet(require_artifact(folder / "bootstrap.parquet", cmd))
summary = json.loads(require_artifact(folder / "summary.json", cmd).read_text())
print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=1))""",
            """from analysis.covariance_bootstrap import plot_bootstrap

paths = plot_bootstrap(res, out / "figures" / f"analysis_bootstrap_{run}")
res.to_csv(out / "tables" / f"analysis_bootstrap_{run}.csv", index=False)
from IPython.display import Image
Image(str(paths[0]))""",
        ],
    ),
    "analysis_linguistic.ipynb": (
        "# Who are the low-entropy and high-covariance tokens?\n"
        "Share of function words, punctuation, numbers and content tokens per set (`sent analyze linguistic`), "
        "and SENT vs SENT with `token_filter=content` when that run exists.",
        'root = "artifacts/cpu"\nout_dir = "reproduce/out/cpu"\nrun = "sent"\ncompare_run = "sent_content"\nseed = 0',
        [
            """folder = root / "analysis" / "linguistic" / f"{run}_seed{seed}"
cmd = f"sent analyze linguistic --rollouts {root}/runs/{run}/seed{seed} --compare-run {root}/runs/{compare_run}/seed{seed}"
shares = pd.read_parquet(require_artifact(folder / "class_shares.parquet", cmd))
pooled = shares[shares["step"] == -1].pivot(index="set", columns="category", values="share")
pooled.to_csv(out / "tables" / f"analysis_linguistic_{run}.csv")
pooled""",
            """from analysis.linguistic_filter import plot_compare, plot_shares

plot_shares(shares, out / "figures" / f"analysis_linguistic_{run}")
if (folder / "compare_curves.parquet").exists():
    curves = pd.read_parquet(folder / "compare_curves.parquet")
    passk = pd.read_parquet(folder / "compare_passk.parquet")
    plot_compare(curves, passk, out / "figures" / f"analysis_linguistic_{run}_vs_{compare_run}")
    print(json.loads((folder / "summary.json").read_text())["compare"]["notes"])
else:
    print(f"no {compare_run} comparison: run `{cmd}` after training {compare_run}")""",
        ],
    ),
    "analysis_cross_domain.ipynb": (
        "# Semantic entropy outside math\n"
        "Does SE predict the base model's difficulty on the non-math domain as it does on math (Spearman, 95 % "
        "bootstrap CI), and do SENT and GRPO differ when trained there? From `sent analyze cross-domain`.",
        'root = "artifacts/cpu"\nout_dir = "reproduce/out/cpu"\ndomain = "relations"\nreference = "math"',
        [
            """folder = root / "analysis" / "cross_domain"
cmd = f"sent analyze cross-domain --root {root} --domain {domain} --reference {reference}"
corr = pd.read_parquet(require_artifact(folder / "se_difficulty.parquet", cmd))
summary = json.loads(require_artifact(folder / "summary.json", cmd).read_text())
corr.to_csv(out / "tables" / "analysis_cross_domain_se.csv", index=False)
corr""",
            """from analysis.cross_domain import plot_cross_domain
from analysis.linguistic_filter import plot_compare

tables = {d: pd.read_parquet(root / "se" / f"{d}.parquet") for d in (domain, reference)}
plot_cross_domain(tables, corr, out / "figures" / "analysis_cross_domain_se")
curves = pd.read_parquet(folder / "training_curves.parquet")
passk = pd.read_parquet(folder / "training_passk.parquet")
if len(curves) or len(passk):
    plot_compare(curves, passk, out / "figures" / "analysis_cross_domain_training")
for note in summary["training"]["missing"]:
    print("missing:", note)""",
        ],
    ),
}


def build() -> None:
    for name, (intro, params, cells) in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbf.v4.new_markdown_cell(intro), nbf.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                    nbf.v4.new_code_cell(COMMON)] + [nbf.v4.new_code_cell(c) for c in cells]
        nbf.write(nb, HERE / name)


if __name__ == "__main__":
    build()
