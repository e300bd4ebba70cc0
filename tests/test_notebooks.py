"""The notebooks are the sources (notebooks/README.md): every notebooks/*.ipynb is checked here.

Static checks (fast, every notebook): committed clean (no outputs, no execution counts, no editor metadata,
nbformat 4.5), stable meaningful cell ids, an intro cell (paper claim / this notebook / how to read / caveats),
one papermill ``parameters`` cell of literal assignments, each with a comment, listed in notebooks/README.md.
Execution: every notebook runs with papermill on the synthetic fixture root (tests/_artifacts.py) and must write
its files and show each saved figure inline. That tests plumbing only: the fixture numbers are test data.
"""

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import nbformat
import pytest
import yaml


REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
ANALYSIS = {n for n in NOTEBOOKS if n.startswith("analysis_")}  # read `sent analyze` output, not the raw runs

# figures/ and tables/ files each notebook must write on the fixture root
EXPECTED = {
    "table1_pass_at_k.ipynb": ["tables/table1_pass_at_k.csv", "tables/table1_pass_at_k.md",
                               "tables/table1_pass_at_k.html"],
    "table2_avg_at_k.ipynb": ["tables/table2_avg_at_k.md", "tables/table2_avg_at_k.html"],
    "entropy_dynamics.ipynb": ["figures/fig04_entropy_dynamics.png", "figures/fig11_12_entropy_dynamics_all_methods.pdf",
                               "figures/entropy_dynamics_low_entropy_set.png"],
    "response_length.ipynb": ["figures/response_length_training.png", "figures/response_length_eval.png"],
    "training_reward.ipynb": ["figures/training_reward.png", "figures/training_reward.pdf"],
    "se_distribution.ipynb": ["figures/framework_a_se_histogram.png", "figures/se_vs_level.png",
                              "tables/se_vs_level.csv"],
    "token_heatmap.ipynb": ["figures/framework_b_token_heatmap.png"],
    "token_wordclouds.ipynb": ["figures/wordcloud_low_entropy.png", "figures/wordcloud_high_cov.png",
                               "tables/wordcloud_token_counts.csv"],
    "pass_at_k_curves.ipynb": ["figures/pass_at_k_curves.png", "tables/pass_at_k_curves.csv"],
    "one_run.ipynb": ["figures/one_run_sent_seed0_curves.png", "figures/one_run_sent_seed0_heatmap.png",
                      "figures/one_run_sent_seed0_wordclouds.pdf", "tables/one_run_sent_seed0_status.json"],
    "ablations.ipynb": ["tables/ablation_components.md", "tables/ablation_components.html", "tables/ablation_stages.md",
                        "tables/ablation_low_entropy_ratio.md", "figures/fig09_entropy_low_vs_low_highcov.png"],
    "paper_scale_tables.ipynb": ["tables/paper_scale_tables_status.json"],
    "analysis_bootstrap.ipynb": ["figures/analysis_bootstrap_sent.png", "figures/analysis_bootstrap_sent.pdf",
                                 "tables/analysis_bootstrap_sent.csv"],
    "analysis_linguistic.ipynb": ["figures/analysis_linguistic_sent.png", "tables/analysis_linguistic_sent.csv",
                                  "figures/analysis_linguistic_sent_vs_sent_content.png"],
    "analysis_cross_domain.ipynb": ["figures/analysis_cross_domain_se.png", "tables/analysis_cross_domain_se.csv",
                                    "figures/analysis_cross_domain_training.png"],
}

# The fast suite runs the static checks and three quick notebooks (plumbing smoke), one_run among them.
# -m slow executes the other twelve: 85 s (54 s CPU), 10 s of it the analyses of analysed_root.
FAST = {"token_heatmap.ipynb", "paper_scale_tables.ipynb", "one_run.ipynb"}
RUN_PARAMS = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in NOTEBOOKS]

CLEAN_HINT = "clear all outputs in Jupyter (Edit > Clear Outputs of All Cells) and save (notebooks/README.md)"
CELL_ID = re.compile(r"[a-z]+(-[a-z0-9]+)*")  # words joined by '-': "parameters", "plot-fig04"
RANDOM_ID = re.compile(r"[0-9a-f]{8}|[0-9a-f]{8}-[0-9a-f-]{27}")  # what Jupyter and nbformat generate
INTRO_PARTS = ("**Paper claim.**", "**This notebook.**", "**How to read it.**", "**Caveats.**")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / name, as_version=nbformat.NO_CONVERT)


def parameters_of(source: str) -> dict[str, str]:
    """``{name: comment}`` of a parameters cell; fails unless it is only ``name = <literal>  # comment`` lines."""
    comments = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    params = {}
    for stmt in ast.parse(source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), \
            f"line {stmt.lineno}: a parameters cell holds only `name = value  # comment` lines"
        name = stmt.targets[0].id
        ast.literal_eval(stmt.value)  # papermill overrides literals; computed defaults belong in a later cell
        said = [comments[i] for i in range(stmt.lineno, stmt.end_lineno + 1) if i in comments]
        assert said and len(said[0].lstrip("#").strip()) >= 10, f"parameter {name!r} has no comment saying what it is"
        params[name] = said[0]
    return params


def _parameters_cell(nb) -> nbformat.NotebookNode:
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must carry the papermill `parameters` tag"
    return tagged[0]


def test_every_notebook_is_expected_executed_and_run_by_the_pipeline():
    assert NOTEBOOKS, "no notebooks found"
    assert set(NOTEBOOKS) == set(EXPECTED), "every notebook needs its expected output files here (and vice versa)"
    executed = {p if isinstance(p, str) else p.values[0] for p in RUN_PARAMS}
    assert executed == set(NOTEBOOKS), "test_notebook_runs_on_fixture must execute every notebook"
    cpu = yaml.safe_load((REPO / "reproduce/profiles/cpu.yaml").read_text())
    assert set(cpu["notebooks"]) == set(NOTEBOOKS), "reproduce/profiles/cpu.yaml must run every notebook"
    # the .ipynb files are the sources: no generator script or other copy of the cells lives beside them
    others = {p.name for p in NB_DIR.iterdir() if not p.name.startswith((".", "__"))} - set(NOTEBOOKS)
    assert others <= {"README.md"}, f"notebooks/ holds only the notebooks and README.md, not {sorted(others)}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name):
    raw = json.loads((NB_DIR / name).read_text())
    assert (raw["nbformat"], raw["nbformat_minor"]) == (4, 5), f"{name}: save as nbformat 4.5 (cell ids)"
    nb = _read(name)
    nbformat.validate(nb)
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"{name}: notebook metadata {sorted(nb.metadata)}"
    assert nb.metadata.kernelspec.name == "python3", name
    for cell in nb.cells:
        where = f"{name} cell {cell.get('id')!r}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{where} has committed outputs: {CLEAN_HINT}"
            assert cell.execution_count is None, f"{where} has an execution count: {CLEAN_HINT}"
        assert set(cell.metadata) <= {"tags"}, f"{where}: editor metadata {sorted(cell.metadata)}: {CLEAN_HINT}"
        assert set(cell.metadata.get("tags", [])) <= {"parameters"}, f"{where}: tags {cell.metadata.tags}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cell_ids_are_stable_and_meaningful(name):
    ids = [c.get("id") for c in _read(name).cells]
    assert len(set(ids)) == len(ids), f"{name}: duplicate cell ids {ids}"
    for cid in ids:
        assert cid and CELL_ID.fullmatch(cid) and not RANDOM_ID.fullmatch(cid), \
            f"{name}: cell id {cid!r} is not a meaningful name such as 'setup' or 'plot-entropy' (edit the .ipynb)"
    assert ids[:3] == ["intro", "parameters", "setup"], f"{name}: cells must start intro, parameters, setup: {ids}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_opens_with_what_it_shows_and_its_caveats(name):
    intro = _read(name).cells[0]
    assert intro.cell_type == "markdown" and intro.source.startswith("# "), f"{name}: first cell = markdown title"
    missing = [part for part in INTRO_PARTS if part not in intro.source]
    assert not missing, f"{name}: the intro cell lacks {missing}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_tagged_commented_and_documented(name):
    nb = _read(name)
    cell = _parameters_cell(nb)
    assert cell.id == "parameters" and cell is nb.cells[1], f"{name}: the parameters cell comes right after the intro"
    params = parameters_of(cell.source)
    assert {"root", "profile", "out_dir"} <= set(params), f"{name}: run_all passes root, profile, out_dir"
    readme = [line for line in (NB_DIR / "README.md").read_text().splitlines() if f"`{name}`" in line]
    assert readme, f"notebooks/README.md has no row for `{name}`"
    undocumented = [p for p in params if f"`{p}`" not in readme[0]]
    assert not undocumented, f"notebooks/README.md's row for {name} does not list {undocumented}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_saved_figure_is_also_shown(name):
    for cell in _read(name).cells:
        if "R.savefig(" in cell.source:
            assert "plt.show()" in cell.source, f"{name} cell {cell.id!r} saves a figure without plt.show()"


def test_parameters_of_rejects_uncommented_and_computed_parameters():
    assert parameters_of('root = "a"  # artifact root folder\n') == {"root": "# artifact root folder"}
    with pytest.raises(AssertionError, match="no comment"):
        parameters_of('root = "a"\n')
    with pytest.raises(ValueError):
        parameters_of("root = make_root()  # computed, not a literal\n")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    from _artifacts import build_artifacts

    return build_artifacts(tmp_path_factory.mktemp("artifacts") / "cpu", seeds=(0, 1), n_steps=8, n_samples=32,
                           n_problems=3)


@pytest.fixture(scope="module")
def analysed_root(fixture_root):
    """The fixture root plus what `sent analyze` writes under <root>/analysis/ (small B: about 10 s)."""
    import pandas as pd

    from sent.commands.analyze import main as analyze
    from sent.io import atomic_write_parquet

    root = fixture_root
    se = pd.read_parquet(root / "se" / "math.parquet")  # a second SE domain for cross-domain (test data only)
    atomic_write_parquet(root / "se" / "relations.parquet", se.assign(domain="relations"),
                         {"fixture": "tests/test_notebooks.py"})
    runs = f"{root}/runs"
    assert analyze(["bootstrap", "--rollouts", f"{runs}/sent/seed0/rollouts", "--B", "20", "--top-k-ratio", "0.02"]) == 0
    assert analyze(["linguistic", "--rollouts", f"{runs}/sent/seed0/rollouts",
                    "--compare-run", f"{runs}/sent_content/seed0"]) == 0
    # the fixture has no xd_* runs: compare two runs it has, so the training panel is drawn too
    assert analyze(["cross-domain", "--root", str(root), "--B", "50", "--runs", "grpo", "sent"]) == 0
    return root


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_notebook_runs_on_fixture(name, fixture_root, request, tmp_path):
    papermill = pytest.importorskip("papermill")
    root = request.getfixturevalue("analysed_root") if name in ANALYSIS else fixture_root
    out_dir = tmp_path / "out"
    params = {"root": str(root), "profile": "cpu", "out_dir": str(out_dir)}
    if name == "paper_scale_tables.ipynb":  # its artifacts are absent: it must say how to make them
        params = {"root": str(tmp_path / "paper-7b"), "profile": "paper-7b", "out_dir": str(out_dir)}
    executed = papermill.execute_notebook(str(NB_DIR / name), str(tmp_path / name), parameters=params,
                                          kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    missing = [f for f in EXPECTED[name] if not (out_dir / f).is_file()]
    assert not missing, f"{name} did not write {missing}"
    source_ids = [c.id for c in _read(name).cells]
    kept = [c.id for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert kept == source_ids, f"{name}: cell ids changed on a papermill run"
    shown = sum("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    saved = len(list(out_dir.glob("figures/*.png")))
    assert shown >= saved, f"{name} saved {saved} figures but showed {shown} inline"
    if name == "paper_scale_tables.ipynb":
        status = json.loads((out_dir / "tables/paper_scale_tables_status.json").read_text())
        assert status["command"] == "bash reproduce/run_all.sh --profile paper-7b --only eval"
        assert not (out_dir / "figures").exists()  # nothing invented
    if name == "table1_pass_at_k.ipynb":
        md = (out_dir / "tables/table1_pass_at_k.md").read_text()
        assert "paper (1.5B)" in md and "ours (cpu)" in md and "2 seeds, cells: mean [95% CI" in md
        assert "not run (unidentified)" in md and "**" in md and "Missing values:" in md
        assert not (out_dir / "figures").exists()  # the table is markdown and HTML, not a picture
    if name == "one_run.ipynb":
        status = json.loads((out_dir / "tables/one_run_sent_seed0_status.json").read_text())
        assert status["missing"] == [] and status["recorded_steps"] == [4, 8]
