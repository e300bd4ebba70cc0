"""The paper-1.5b plan against the authors' released scripts (reproduce/reference/released_config.yaml): every
audited field is equal, or its difference is listed with a reason in docs/METHODS.md. Changing a value in the
YAML (or in a recipe) makes this test fail until the deviations table says why."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from sent import plan_audit, plans


REPO = Path(__file__).resolve().parents[1]


def _deviations() -> dict[str, str]:
    text = (REPO / "docs" / "METHODS.md").read_text()
    section = text.split("## Deviations from the authors' scripts (paper-1.5b)", 1)[1]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", section, re.M)}


def _same(ours, theirs) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours == theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return ours == theirs


def audit(released: dict, tmp_path: Path) -> tuple[dict, dict]:
    """(differences not in the table, table rows that are not differences) for the sent_release 1.5B run."""
    fields = released["runs"]["sent_1.5b"]["fields"]
    p = plans.expand(plans.load_profile("paper-1.5b"), tmp_path)
    runs, _ = plans.profile_plans(p, tmp_path, num_processes=int(fields["n_gpus"]["value"]))
    rp = {r.run: r for r in runs}["sent_release"]
    table = _deviations()
    unexplained, stale = {}, {}
    for name, read in plan_audit.RELEASED_FIELDS.items():
        assert name in fields, f"released_config.yaml has no field {name!r}"
        ours, theirs = read(rp, rp.recipe), fields[name]["value"]
        if not _same(ours, theirs) and name not in table:
            unexplained[name] = (theirs, ours)
        if _same(ours, theirs) and name in table:
            stale[name] = ours
    return unexplained, stale


@pytest.fixture(scope="module")
def released():
    return yaml.safe_load((REPO / "reproduce" / "reference" / "released_config.yaml").read_text())


def test_paper_plan_matches_the_release_or_says_why(released, tmp_path):
    unexplained, stale = audit(released, tmp_path)
    assert unexplained == {}, f"differences (released, ours) missing from docs/METHODS.md deviations: {unexplained}"
    assert stale == {}, f"docs/METHODS.md lists deviations that are no longer differences: {stale}"


@pytest.mark.parametrize("field,value", [("learning_rate", 2e-6), ("updates_per_generation_batch", 4),
                                         ("master_weight_dtype", "bfloat16"), ("epochs_per_stage", 3)])
def test_the_audit_fails_when_a_released_value_changes(released, tmp_path, field, value):
    changed = yaml.safe_load(yaml.safe_dump(released))
    changed["runs"]["sent_1.5b"]["fields"][field]["value"] = value
    unexplained, _ = audit(changed, tmp_path)
    assert field in unexplained


def test_released_config_records_its_sources(released):
    assert re.fullmatch(r"[0-9a-f]{40}", released["source"]["commit"])
    for name, entry in released["runs"]["sent_1.5b"]["fields"].items():
        assert "value" in entry and entry.get("source"), name
