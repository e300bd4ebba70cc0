"""sent.fast_decode: the lean sampling loop draws exactly the tokens ``model.generate`` draws, or defers to it."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sent import fast_decode
from tests._tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("fd") / "m", hidden=32, layers=2)  # GQA: 4 heads, 2 kv heads
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _prompts(tok, n=24):
    words = ["one plus two", "seven", "three times four is", "what is nine minus", "two", "five and six and seven"]
    enc = tok([words[i % len(words)] for i in range(n)], return_tensors="pt", padding=True)  # left-padded
    return enc["input_ids"], enc["attention_mask"]


def _both(model, ids, mask, seed=11, **kw):
    kw = dict(do_sample=True, max_new_tokens=40, pad_token_id=0, **kw)
    torch.manual_seed(seed)
    ref = model.generate(input_ids=ids, attention_mask=mask, **kw)
    torch.manual_seed(seed)
    lean = fast_decode.generate(model, ids, mask, None, **kw)
    return ref, lean


@pytest.mark.parametrize("sampling", [
    dict(temperature=1.0, top_p=1.0, top_k=0),
    dict(temperature=0.7, top_p=1.0, top_k=0),
    dict(temperature=1.3, top_p=0.9, top_k=0),
    dict(temperature=1.0, top_p=1.0, top_k=5),
])
def test_tokens_equal_generate(tiny_lm, sampling):
    model, tok = tiny_lm
    ids, mask = _prompts(tok)
    assert fast_decode.supports(model)
    ref, lean = _both(model, ids, mask, eos_token_id=[tok.eos_token_id], **sampling)
    assert torch.equal(ref, lean)
    finished = (lean[:, ids.shape[1]:] == tok.eos_token_id).any(dim=1)
    # the case that exercises dropping finished rows mid-way: some rows stop early, others run on
    assert 0 < int(finished.sum()) < len(finished) or lean.shape[1] < ids.shape[1] + 40


def test_early_stop_when_every_row_finished(tiny_lm):
    model, tok = tiny_lm
    ids, mask = _prompts(tok, n=4)
    # every token counts as EOS: generate stops after one step, and so must the lean loop
    ref, lean = _both(model, ids, mask, eos_token_id=list(range(len(tok))), temperature=1.0, top_p=1.0, top_k=0)
    assert ref.shape[1] == ids.shape[1] + 1 and torch.equal(ref, lean)


def test_unsupported_settings_defer_to_generate(tiny_lm, monkeypatch):
    model, tok = tiny_lm
    ids, mask = _prompts(tok, n=6)
    called = []
    monkeypatch.setattr(fast_decode, "_forward", lambda *a, **k: called.append(1) or 1 / 0)
    ref, lean = _both(model, ids, mask, eos_token_id=[tok.eos_token_id], repetition_penalty=1.3)
    assert torch.equal(ref, lean) and not called
    monkeypatch.setenv("SENT_FAST_DECODE", "0")
    assert not fast_decode.supports(model)


def test_installed_patches_only_inside_and_restores_training_mode(tiny_lm):
    model, tok = tiny_lm
    ids, mask = _prompts(tok, n=6)
    model.train()
    try:
        with fast_decode.installed(model):
            assert "generate" in vars(model)
            torch.manual_seed(3)
            lean = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=12,
                                  pad_token_id=0, eos_token_id=[tok.eos_token_id])
        assert "generate" not in vars(model) and model.training
        model.eval()
        torch.manual_seed(3)
        ref = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=12, pad_token_id=0,
                             eos_token_id=[tok.eos_token_id])
        assert torch.equal(ref, lean)
    finally:
        model.eval()
