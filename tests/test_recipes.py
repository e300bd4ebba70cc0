"""Every recipe parses into a valid SENTConfig and builds its datasets offline (--dry_run: fixtures, no downloads)."""

from pathlib import Path

import pytest

from sent.commands import train


RECIPES = sorted(p for p in Path("reproduce/recipes").glob("*/*.yaml") if p.parent.name != "accelerate")


def test_recipe_folders_exist():
    assert {p.parent.name for p in RECIPES} == {"smoke", "cpu", "paper-1.5b", "paper-7b", "paper-14b"}


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_recipe_dry_run(recipe, tmp_path):
    assert train.main(["--config", str(recipe), "--dry_run", "true", "--root", str(tmp_path)]) == 0
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_paper_recipes_carry_paper_settings():
    script, config, model = train._parse(["--config", "reproduce/recipes/paper-1.5b/sent.yaml", "--dry_run", "true"])
    assert model.model_name_or_path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert (config.num_generations, config.learning_rate, config.max_completion_length) == (8, 1e-6, 2048)
    assert (config.beta, config.beta_low, config.beta_high, config.epochs_per_stage) == (0.001, 0.05, 0.2, 5)
    assert config.use_vllm and config.temperature == 1.0 and script.reward_incorrect == -1.0
    # 4 GPUs x 4 x 128 steps_per_generation = 2048 responses = 256 prompts; 2 updates per generation batch
    assert config.steps_per_generation // config.gradient_accumulation_steps == 2
