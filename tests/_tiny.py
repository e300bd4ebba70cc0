"""A tiny random Llama + word-level tokenizer saved to disk, for trainer tests (reference/peers.md §1.8).

Saved to a folder (not kept in memory) because TRL reloads the reference model from
``model.config._name_or_path`` when ``beta != 0``.
"""

from __future__ import annotations

from pathlib import Path

import torch


DIGITS = [str(i) for i in range(10)]
WORDS = ["Q:", "A:", "+", "=", "so", "the", "answer", "is", "we", "add", "and", "then", ".", ","]
SPECIALS = ["<pad>", "<eos>", "<unk>", "<bos>"]


def build_tiny_model(path: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a random ``LlamaForCausalLM`` (about 20k params) and its tokenizer to ``path``; return the path."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    vocab = {tok: i for i, tok in enumerate(SPECIALS + DIGITS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", bos_token="<bos>",
        padding_side="left",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False,
        pad_token_id=vocab["<pad>"], eos_token_id=vocab["<eos>"], bos_token_id=vocab["<bos>"],
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = vocab["<pad>"]
    model.generation_config.eos_token_id = vocab["<eos>"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_rows(n: int = 32, seed: int = 0) -> list[dict]:
    """Rows in the common problem schema: ``Q: a + b = A:`` with single-digit answers."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        a, b = (int(x) for x in torch.randint(0, 5, (2,), generator=g))
        problem = f"{a} + {b}"
        rows.append({
            "prompt_id": f"tiny-{i:04d}", "problem": problem, "answer": str(a + b), "suite": "train",
            "domain": "math", "level": 1, "prompt": f"Q: {a} + {b} = A:",
        })
    return rows


def tiny_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the answer digit appears among the completion's words, else 0.0 (a dense-ish toy signal)."""
    return [1.0 if a in c.split() else 0.0 for c, a in zip(completions, answer)]
