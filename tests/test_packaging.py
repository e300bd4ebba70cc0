"""The install files agree with each other: conda users and pip users get the same stack."""

import re
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_environment_yml_pip_list_matches_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    assert pip_sections[0] == _requirements()


def test_torch_is_pinned_exactly_and_first():
    reqs = _requirements()
    # torch first: installing anything before it can pull a multi-GB CUDA torch as a dependency.
    assert reqs[0] == "torch==2.13.0"
    assert all(re.match(r"^[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*$", r) for r in reqs), "every requirement is pinned with =="


def test_setup_script_installs_torch_before_the_rest():
    script = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert script.index("torch==2.13.0") < script.index("-r requirements.txt")


def test_vllm_is_optional():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("vllm") for dep in project["dependencies"])
    assert any(dep.startswith("vllm") for dep in project["optional-dependencies"]["vllm"])


def test_trl_pin_agrees():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "trl==1.16.0" in project["dependencies"]
    assert "trl==1.16.0" in _requirements()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in ci


def test_every_package_is_installed_and_analysis_is_not_top_level():
    """pyproject lists its packages by hand (the folder analysis/ installs as `sent_analysis`): a new subpackage of
    sent/ must be added there, and no top-level `analysis` package (a name other projects use) is installed."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sent").rglob("__init__.py")}
    assert on_disk <= set(setup["packages"]), f"add {sorted(on_disk - set(setup['packages']))} to pyproject.toml"
    assert setup["package-dir"] == {"sent_analysis": "analysis"} and "sent_analysis" in setup["packages"]
    assert not any(p == "analysis" or p.startswith("analysis.") for p in setup["packages"])
