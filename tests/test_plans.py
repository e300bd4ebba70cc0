"""Run plans: equal budgets across every method of every profile, the plan report, and a dry run that writes only
plan.md."""

import subprocess
import sys

import pytest

from sent import plans


PROFILES = sorted(p.stem for p in plans.PROFILES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_method_of_a_profile_gets_the_same_budget(profile, tmp_path):
    p = plans.expand(plans.load_profile(profile), tmp_path)
    runs, _ = plans.profile_plans(p, tmp_path, num_processes=4 if "paper" in profile else None)
    problems, notes = plans.check_plans(runs)
    assert problems == []
    by_domain = {}
    for rp in runs:
        by_domain.setdefault(rp.domain, []).append(rp)
        assert rp.updates_per_generation == 2  # the authors' scripts: 2 optimizer updates per generation batch
    for group in by_domain.values():
        for key in ("train_prompts", "epochs_per_prompt", "samples_per_prompt", "prompts_per_generation"):
            assert len({getattr(rp, key) for rp in group}) == 1, key
        if profile in ("smoke", "cpu"):  # sizes chosen so that every stage splits into whole batches: exact
            assert len({rp.generation_batches for rp in group}) == 1 and not notes
            assert len({rp.optimizer_updates for rp in group}) == 1


def test_unequal_budget_is_reported():
    base = dict(method="grpo", curriculum=None, domain="math", train_prompts=64, prompts_source="", stage_sizes=[64],
                generation_batches=8, optimizer_updates=16, updates_per_generation=2, epochs_per_prompt=1,
                samples_per_prompt=8, prompts_per_generation=8, prompts_per_update=4, micro_batch=4,
                gradient_accumulation_steps=1, num_processes=1, processes_from="", master_dtype="float32",
                compute_dtype="float32", launch="", se_max_new_tokens=96, train_max_new_tokens=72,
                eval_max_new_tokens=None, kl_terms="", stage_boundary="", prompt_template="toy",
                reward_rule="math_verify", rollout_engine="", vllm_is_correction=None, learning_rate=1e-3,
                lr_scheduler="constant")
    same = [plans.RunPlan(run="a", **base), plans.RunPlan(run="b", **base)]
    assert plans.check_plans(same) == ([], [])
    more = dict(base, epochs_per_prompt=2, generation_batches=16, optimizer_updates=32)
    problems, _ = plans.check_plans([plans.RunPlan(run="a", **base), plans.RunPlan(run="b", **more)])
    assert any("epochs_per_prompt" in p for p in problems)
    short = dict(base, se_max_new_tokens=32)
    problems, _ = plans.check_plans([plans.RunPlan(run="a", **short)])
    assert any("SE samples 32" in p for p in problems)


def test_paper_plan_has_the_authors_scale(tmp_path):
    p = plans.expand(plans.load_profile("paper-1.5b"), tmp_path)
    runs, launch = plans.profile_plans(p, tmp_path, num_processes=4)
    by_run = {rp.run: rp for rp in runs}
    sent = by_run["sent_release"]
    assert sent.train_prompts > 17000 and sent.stage_sizes[0] > 8000  # all of DAPO-Math-17k, not 512 prompts
    assert (sent.epochs_per_prompt, sent.updates_per_generation, sent.prompts_per_generation) == (5, 2, 256)
    assert sent.master_dtype == "float32" and sent.compute_dtype.startswith("bfloat16")
    assert sent.launch.startswith("accelerate launch --config_file reproduce/recipes/accelerate/ddp.yaml")
    assert sent.se_max_new_tokens >= sent.train_max_new_tokens
    assert "fresh optimizer" in sent.stage_boundary and sent.vllm_is_correction is False
    assert by_run["grpo"].generation_batches == 17398 // 256 * 5
    text = plans.plan_markdown("paper-1.5b", runs, launch, *plans.check_plans(runs))
    assert "| sent_release | sent_release | dapo | 17,398 | 8,699 / 8,699 | 5 |" in text


def test_dry_run_writes_plan_md_and_nothing_else(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    res = subprocess.run([sys.executable, "reproduce/pipeline.py", "--profile", "paper-7b", "--dry-run", "--root",
                          str(root), "--out", str(out), "--num-processes", "8"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "[plan]" in res.stdout and "accelerate launch" in res.stdout and "--curriculum_stage 1" in res.stdout
    assert not root.exists()
    assert sorted(q.name for q in out.rglob("*")) == ["plan.md"]
    assert "zero3.yaml --num_processes 8" in (out / "plan.md").read_text()


def test_run_seeds_profile_default_run_override_and_cli():
    from sent.plans import PlanError, load_profile, run_seeds

    p = load_profile("cpu")
    assert run_seeds(p, "grpo") == 3 and run_seeds(p, "ctl_curr_random") == 3  # main table and controls
    assert run_seeds(p, "abl_ratio_0.7") == 1  # an ablation: one seed, labelled
    assert run_seeds(p, "abl_ratio_0.7", 2) == 2 and run_seeds(p, "grpo", 1) == 1  # --seeds N sets every run
    assert run_seeds(load_profile("smoke"), "grpo") == 1
    bad = {**p, "runs": {"x": {"seeds": 0}}}
    with pytest.raises(PlanError, match="seeds"):
        run_seeds(bad, "x")
