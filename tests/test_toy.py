"""Toy tokenizer, SFT batches, sampling and the `sent toy-base` smoke build (its answers are scored by
sent.answers: tests/test_answers.py)."""

import dataclasses
import json
import random

import pytest
import torch

from sent import toy
from sent.data import make_math_problems, make_relation_problems, render_prompts


@pytest.fixture(scope="module")
def tokenizer():
    return toy.build_tokenizer(n_samples=600)


def test_split_pieces_keep_spaces():
    assert toy.split_pieces("is 12.") == ["is", " 1", "2", "."]
    assert toy.split_pieces("Q: x\nA: So \\boxed{3/4}.") == ["Q", ":", " x", "\n", "A", ":", " So", " \\boxed{", "3",
                                                            "/", "4", "}", "."]


def test_tokenizer_round_trips_all_generated_text_without_unk(tokenizer):
    texts = []
    for seed in range(3):
        for make in (make_math_problems, make_relation_problems):
            df = render_prompts(make(300, seed=seed), "toy")
            texts += list(df["prompt"]) + [" " + s for s in df["solution"]]
    texts += list(render_prompts(make_math_problems(20, split="test", seed=9), "paper")["prompt"])
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids) == text
    assert len(tokenizer) < 400  # word-level: a few hundred pieces
    assert tokenizer.padding_side == "left"


def test_sft_batch_masks_prompt_and_ends_with_eos(tokenizer):
    rows = make_math_problems(3, seed=0).to_dict("records")
    batch = toy.sft_batch(tokenizer, rows)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape
    n_prompt = len(tokenizer(toy.TOY_TEMPLATE.replace("{problem}", rows[0]["problem"]))["input_ids"])
    assert (labels[0, :n_prompt] == -100).all()  # no loss on the prompt
    valid = labels[0][labels[0] != -100]
    assert valid[-1].item() == tokenizer.eos_token_id
    assert tokenizer.decode(valid[:-1]) == " " + rows[0]["solution"]
    assert (labels[mask == 0] == -100).all()  # no loss on padding


def test_sample_with_entropy_shapes(tokenizer):
    model = toy.build_model(tokenizer, toy.ToyModelConfig(hidden_size=32, num_layers=1, num_heads=2,
                                                          intermediate_size=64))
    prompts = ["Q: Ann is taller than Bo. Who is the tallest?\nA:", "Q: Tom has 3 pens. How many pens?\nA:"]
    outs = toy.sample_with_entropy(model, tokenizer, prompts, max_new_tokens=8, seed=0)
    assert len(outs) == 2
    for o in outs:
        assert len(o["entropy"]) == len(o["tokens"]) <= 8
        assert all(0.0 <= h <= torch.log(torch.tensor(float(len(tokenizer)))).item() + 1e-4 for h in o["entropy"])
    again = toy.sample_with_entropy(model, tokenizer, prompts, max_new_tokens=8, seed=0)
    assert [o["text"] for o in outs] == [o["text"] for o in again]  # seeded


def test_draw_rows_are_train_split_and_mixed():
    rows = toy.draw_rows(200, random.Random(0), math_ratio=0.5)
    assert {r["domain"] for r in rows} == {"math", "relations"}
    assert {r["level"] for r in rows} == set(range(1, 7))
    with pytest.raises(ValueError, match="math_ratio"):
        toy.draw_rows(2, random.Random(0), math_ratio=1.5)


def test_toy_base_smoke_builds_loadable_folder_that_learns_and_is_cached(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sent.commands.toy_base import main

    monkeypatch.setenv("SENT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "base"
    assert main(["--out", str(out), "--profile", "smoke", "--threads", "1"]) == 0
    assert toy.is_complete(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder renamed away
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.padding_side == "left" and tok.pad_token_id == model.generation_config.pad_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    prompt_info = json.loads((out / "sent_prompt.json").read_text())
    assert prompt_info["template"] == "Q: {problem}\nA:" and prompt_info["domains"] == ["math", "relations"]
    report = json.loads((out / "base_report.json").read_text())
    assert {"pass@1", "pass@1_by_domain", "mean_token_entropy", "low_share_function_words"} <= set(report)
    assert "seconds" not in json.dumps(report)  # timings live in build_timing.json: same seed, same report
    # the smoke base solves some easy problems, so smoke RL runs get a reward signal
    assert report["pass@1"] > 0
    text = "Q: Ann is taller than Bo. Who is the tallest?\nA: So the tallest is \\boxed{Ann}."
    assert tok.decode(tok(text)["input_ids"]) == text

    def no_training(*a, **k):
        raise AssertionError("trained although an identical base exists")

    monkeypatch.setattr(toy, "sft_train", no_training)
    assert toy.build_toy_base(out, profile="smoke") == report  # complete folder: skipped
    again = tmp_path / "again"  # same settings elsewhere: copied from the cache, identical
    assert main(["--out", str(again), "--profile", "smoke", "--threads", "1"]) == 0
    assert (again / "base_report.json").read_bytes() == (out / "base_report.json").read_bytes()
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    with pytest.raises(AssertionError, match="trained although"):  # --no-cache really rebuilds
        main(["--out", str(tmp_path / "fresh"), "--profile", "smoke", "--no-cache"])


def test_cache_key_follows_the_settings_not_the_machine():
    from sent.commands.toy_base import cache_key

    model_cfg, settings = toy.PROFILES["smoke"]
    key = cache_key("smoke", 0, model_cfg, settings)
    assert key == cache_key("smoke", 0, model_cfg, settings)
    assert key == cache_key("smoke", 0, model_cfg, dataclasses.replace(settings, max_minutes=5.0))  # a safety cap
    assert key != cache_key("smoke", 1, model_cfg, settings)
    assert key != cache_key("smoke", 0, model_cfg, dataclasses.replace(settings, max_steps=601))


def test_bad_profile_and_settings(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        toy.build_toy_base(tmp_path / "x", profile="gpu")
    with pytest.raises(ValueError, match="target_pass_at_1"):
        toy.SFTSettings(target_pass_at_1=0.0)


def test_lr_factor_warmup_then_constant_or_cosine():
    s = toy.SFTSettings(warmup_steps=10, max_steps=110, schedule="constant")
    assert toy.lr_factor(0, s) == pytest.approx(0.1)  # (0 + 1) / 10
    assert toy.lr_factor(50, s) == 1.0
    c = toy.SFTSettings(warmup_steps=10, max_steps=110, schedule="cosine", min_lr_ratio=0.1)
    assert toy.lr_factor(10, c) == pytest.approx(1.0)
    assert toy.lr_factor(60, c) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 * 0.5
    assert toy.lr_factor(110, c) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        toy.SFTSettings(schedule="linear")


@pytest.mark.slow
def test_base_is_the_same_on_a_loaded_machine(tmp_path, monkeypatch):
    """Issue 10: SFT stops by steps, never by wall clock, so CPU hogs beside the build change nothing."""
    import subprocess
    import sys

    from sent.commands.toy_base import main

    monkeypatch.setenv("SENT_CACHE", "off")
    assert main(["--out", str(tmp_path / "quiet"), "--profile", "smoke", "--threads", "1"]) == 0
    hog = "import time\nt = time.time()\nwhile time.time() - t < 600: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(3)]
    try:
        assert main(["--out", str(tmp_path / "loaded"), "--profile", "smoke", "--threads", "1"]) == 0
    finally:
        for h in hogs:
            h.kill()
    for name in ("base_report.json", "model.safetensors"):
        assert (tmp_path / "quiet" / name).read_bytes() == (tmp_path / "loaded" / name).read_bytes(), name
    quiet = json.loads((tmp_path / "quiet" / "build_timing.json").read_text())
    loaded = json.loads((tmp_path / "loaded" / "build_timing.json").read_text())
    print(f"smoke base: {quiet} quiet vs {loaded} with 3 CPU hogs")
