"""The paper-1.5b code path without a download: a tiny random-init Qwen2 (the paper models' architecture) with a
Qwen-style chat template runs the paper-1.5b recipe scaled down on CPU: fp32 master weights with bf16 autocast, the
same accumulation structure (2 updates per generation batch), the DAPO prompt, and a 2-stage curriculum where each
stage is its own training (stage 2 from stage 1's weights, pi_ref = stage 1's model, fresh optimizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sent import plans


QWEN_TEMPLATE = (  # Qwen2's layout; spaces around the markers because the tiny tokenizer splits on whitespace
    "{% for m in messages %}<|im_start|> {{ m['role'] }} \n {{ m['content'] }} <|im_end|> \n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant \n{% endif %}")


def _tiny_qwen2(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "user", "assistant", "Answer:", "Solve", "the",
             "answer", "is", "+", "="] + [str(i) for i in range(10)]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                        unk_token="<unk>", padding_side="left")
    tokenizer.chat_template = QWEN_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=0, eos_token_id=vocab["<|im_end|>"])
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = vocab["<|im_end|>"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _length_reward(*_, **__):
    """Reward with variance on a random model: +1 for an even number of characters, -1 otherwise (math_dapo's +-1)."""
    def reward(completions, **kwargs):
        from sent.rewards import completion_text

        return [1.0 if len(completion_text(c)) % 2 == 0 else -1.0 for c in completions]
    reward.__name__ = "length_parity"
    return reward


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    import sent.rewards
    from sent.commands import train
    from sent.curriculum import write_curriculum

    tmp = tmp_path_factory.mktemp("paper_path")
    base = _tiny_qwen2(tmp / "base")
    rows = [{"prompt_id": f"p{i:03d}", "problem": f"{i % 5} + {i % 3}", "answer": str(i % 5 + i % 3),
             "suite": "train", "domain": "dapo", "level": 1, "se": float(i % 4)} for i in range(8)]
    write_curriculum(pd.DataFrame(rows), tmp / "root" / "curriculum" / "dapo", n_stages=2)
    p = plans.expand(plans.load_profile("paper-1.5b"), tmp / "root")
    p["model"] = str(base)
    # the paper budget scaled down: 2 prompts x 4 samples per generation batch, 2 updates, micro-batch 2, 1 epoch
    p["budget"] = {"prompts_per_generation": 2, "num_generations": 4, "updates_per_generation": 2, "micro_batch": 2,
                   "epochs": 1}
    recipe = plans.resolve_run(p, "sent_release", p["runs"]["sent_release"], tmp / "root", 0, num_processes=1)
    recipe.update(use_vllm=False, use_cpu=True, gradient_checkpointing=False, max_completion_length=8,
                  save_steps=2, record_rollouts_every=2, record_max_rows=8, logging_steps=1)
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    original = getattr(sent.rewards, "make_reward", None)
    sent.rewards.make_reward = _length_reward  # random weights never write "Answer: 7": a reward with variance
    try:
        assert train.main(["--config", str(path)]) == 0
    finally:
        sent.rewards.make_reward = original
    return tmp, recipe, base


def test_recipe_is_the_scaled_paper_plan(staged_run):
    _, recipe, _ = staged_run
    assert recipe["dtype"] == "float32" and recipe["bf16"] is True  # fp32 master, bf16 compute
    assert (recipe["gradient_accumulation_steps"], recipe["steps_per_generation"]) == (2, 4)  # 2 updates per batch
    assert recipe["prompt_template"] == "dapo" and recipe["chat"] is True


def test_each_stage_is_its_own_run_from_the_previous_weights(staged_run):
    tmp, _, base = staged_run
    run = tmp / "root" / "runs" / "sent_release" / "seed0"
    for stage in (1, 2):
        assert (run / f"stage{stage}" / "DONE").read_text().split() == ["step", "4"]  # 2 batches x 2 updates
    cfg2 = yaml.safe_load((run / "stage2" / "config.yaml").read_text())
    assert cfg2["model"]["model_name_or_path"] == str(run / "stage1" / "final")
    assert cfg2["config"]["curriculum_stage"] == 2
    assert (run / "DONE").read_text().split() == ["step", "8"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # stage 2 continues the numbering
    assert sorted(p.name for p in (run / "rollouts").glob("step_*.parquet"))[-1] == "step_000008.parquet"


def test_master_weights_stay_fp32_and_move(staged_run):
    from safetensors.torch import load_file

    tmp, _, base = staged_run
    run = tmp / "root" / "runs" / "sent_release" / "seed0"
    w0 = load_file(base / "model.safetensors")
    w1 = load_file(run / "stage1" / "final" / "model.safetensors")
    w2 = load_file(run / "final" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in w2.values())
    # lr 1e-6: in pure bf16 almost no weight would change; with fp32 master weights they all do
    moved = sum(int((w1[k] != w0[k]).sum()) for k in w0) / sum(t.numel() for t in w0.values())
    assert moved > 0.9
    assert any(not torch.equal(w2[k], w1[k]) for k in w1)


def test_reference_and_optimizer_reset_at_the_stage_boundary(staged_run):
    tmp, _, _ = staged_run
    run = tmp / "root" / "runs" / "sent_release" / "seed0"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    by_step = {m["step"]: m for m in metrics}
    # the first update of each stage sees policy == pi_ref: the k3 KL to the reference is exactly 0 there
    assert by_step[1]["kl/ref"] == 0.0 and by_step[5]["kl/ref"] == 0.0
    assert by_step[4]["kl/ref"] > 0.0  # it had grown during stage 1: stage 2's reference is not the base model
    # the |logp - old_logp| term acts on the second update of each generation batch, never on the first
    assert all(by_step[s]["kl/old"] == 0.0 for s in (1, 3, 5, 7))
    assert all(by_step[s]["kl/old"] > 0.0 for s in (2, 4, 6, 8))
    # fresh optimizer: stage 2's saved Adam state counts only stage 2's updates
    state = torch.load(run / "stage2" / "checkpoint-4" / "optimizer.pt", weights_only=False)["state"]
    assert {int(s["step"]) for s in state.values()} == {4}
