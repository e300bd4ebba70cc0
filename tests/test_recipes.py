"""Every run of every profile resolves into a recipe that parses into a valid SENTConfig (TrlParser + validation),
and the shared method recipes say what they run."""

from pathlib import Path

import pytest
import yaml

from sent import plans
from sent.commands import train


PROFILES = sorted(p.stem for p in plans.PROFILES_DIR.glob("*.yaml"))
RUNS = [(name, run) for name in PROFILES for run in plans.load_profile(name)["runs"]]


def test_profiles_and_recipe_folders_exist():
    assert set(PROFILES) == {"smoke", "cpu", "paper-1.5b", "paper-7b", "paper-14b"}
    for name in PROFILES:
        assert (plans.RECIPES_DIR / name / "train.yaml").exists()


@pytest.mark.parametrize("profile,run", RUNS, ids=[f"{p}/{r}" for p, r in RUNS])
def test_every_run_resolves_to_a_valid_config(profile, run, tmp_path):
    p = plans.expand(plans.load_profile(profile), tmp_path)
    recipe = plans.resolve_run(p, run, p["runs"][run] or {}, tmp_path, seed=0, num_processes=4 if "paper" in profile
                               else 1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    script, config, model = train._parse(["--config", str(path), "--dry_run", "true"])
    assert config.method == recipe["method"] and script.run == run
    assert config.updates_per_generation() == p["budget"]["updates_per_generation"]


def test_a_run_may_not_set_a_budget_field(tmp_path):
    p = plans.expand(plans.load_profile("cpu"), tmp_path)
    with pytest.raises(plans.PlanError, match="budget"):
        plans.resolve_run(p, "grpo", {"per_device_train_batch_size": 64}, tmp_path, 0, 1)


def test_paper_recipes_carry_paper_settings(tmp_path):
    p = plans.expand(plans.load_profile("paper-1.5b"), tmp_path)
    recipe = plans.resolve_run(p, "sent_release", p["runs"]["sent_release"], tmp_path, 0, num_processes=4)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    script, config, model = train._parse(["--config", str(path), "--dry_run", "true"])
    assert model.model_name_or_path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert model.dtype == "float32" and config.bf16  # fp32 master weights, bf16 compute (as verl)
    assert (config.num_generations, config.learning_rate, config.max_completion_length) == (8, 1e-6, 2048)
    assert (config.beta, config.epochs_per_stage, config.num_train_epochs) == (0.001, 5, 5)
    assert config.use_vllm and not config.vllm_importance_sampling_correction
    assert (script.prompt_template, script.reward_rule, script.reward_incorrect) == ("dapo", "math_dapo", -1.0)
    # 4 GPUs x 4 rows x 64 accumulation = 1024 responses = 128 prompts per update; 256 prompts per generation batch
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (4, 64)
    assert config.steps_per_generation // config.gradient_accumulation_steps == 2
    # 8 GPUs: the same budget with half the accumulation
    assert plans.resolve_run(p, "grpo", {}, tmp_path, 0, num_processes=8)["gradient_accumulation_steps"] == 32
    with pytest.raises(plans.PlanError, match="micro-batches"):
        plans.resolve_run(p, "grpo", {}, tmp_path, 0, num_processes=3)


def test_method_recipes_hold_method_settings_only():
    for path in sorted(Path(plans.RECIPES_DIR / "methods").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        assert "method" in recipe, path
        assert not set(recipe) & set(plans.BUDGET_FIELDS), path
        assert not {"model_name_or_path", "learning_rate", "max_completion_length"} & set(recipe), path
