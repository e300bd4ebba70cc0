"""sent.generation.materialize_model and `sent convert-model`: any model spec -> a plain HF folder, cached."""

import json

import pytest
import torch
from _smollm2 import smollm2_hf_folder
from _tiny import build_tiny_model

from sent.cli import main as cli
from sent.generation import MATERIALIZED_MARKER, ModelSpecError, materialize_model, resolve_model_spec


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_hf_folder_is_returned_unchanged(tiny_folder, tmp_path):
    before = _snapshot(tiny_folder)
    assert materialize_model(tiny_folder, tmp_path / "out") == tiny_folder
    assert materialize_model(str(tiny_folder), tmp_path / "out") == tiny_folder
    assert _snapshot(tiny_folder) == before  # nothing written into it (no marker either)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec", ["no/such-model", "missing-folder"])
def test_bad_spec_is_a_value_error_naming_it(spec, tmp_path):
    with pytest.raises(ValueError, match=spec):
        materialize_model(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_without_config_is_a_bad_spec(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        materialize_model(tmp_path / "weights", tmp_path / "out")


def test_gguf_specs_resolve_without_loading(tmp_path):
    (tmp_path / "m.Q4.gguf").write_bytes(b"GGUF")
    src = resolve_model_spec(tmp_path / "m.Q4.gguf")
    assert (src.kind, src.location, src.gguf_file) == ("gguf", str(tmp_path.resolve()), "m.Q4.gguf")
    assert resolve_model_spec(tmp_path, gguf_file="m.Q4.gguf") == src
    with pytest.raises(ModelSpecError, match="other.gguf"):
        resolve_model_spec(tmp_path, gguf_file="other.gguf")
    assert resolve_model_spec("org/model", allow_download=True).kind == "hub"


def test_conversion_is_cached_by_source_and_dtype(tiny_folder, tmp_path, monkeypatch):
    """A hub id (faked by the tiny model) is saved once; the marker makes the next call a no-op."""
    import sent.generation as gen

    real_load, calls = gen.load_model, []

    def fake_load(spec, **kwargs):
        calls.append((spec, kwargs["dtype"]))
        return real_load(tiny_folder, dtype=kwargs["dtype"])

    monkeypatch.setattr(gen, "load_model", fake_load)
    out = tmp_path / "models" / "tiny"
    assert materialize_model("org/tiny", out, allow_download=True) == out
    marker = json.loads((out / MATERIALIZED_MARKER).read_text())
    assert marker["spec"] == "org/tiny" and marker["dtype"] == "float32"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]  # no partial folder left behind

    materialize_model("org/tiny", out, allow_download=True)
    assert calls == [("org/tiny", "float32")]  # reused
    materialize_model("org/tiny", out, dtype="bfloat16", allow_download=True)
    assert calls[-1] == ("org/tiny", "bfloat16")  # another dtype: converted again, in place
    assert json.loads((out / MATERIALIZED_MARKER).read_text())["dtype"] == "bfloat16"


def test_never_overwrites_a_foreign_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=MATERIALIZED_MARKER):
        materialize_model("org/tiny", tmp_path / "out", allow_download=True)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_convert_model_command(tiny_folder, tmp_path, capsys):
    assert cli(["convert-model", str(tiny_folder), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_folder)
    assert cli(["convert-model", "no/such-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sent convert-model: model 'no/such-model'") and "\n" not in err


@pytest.mark.slow
def test_smollm2_converts_to_a_plain_hf_folder(tmp_path_factory):
    """SmolLM2 GGUF -> HF folder that plain from_pretrained reloads with the same tokens, template and logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sent.generation import load_model

    folder = smollm2_hf_folder(tmp_path_factory)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)  # no gguf_file, no gguf package
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32

    ref, ref_tok = load_model("smollm2")
    assert tok.chat_template == ref_tok.chat_template and tok.chat_template
    text = ref_tok.apply_chat_template([{"role": "user", "content": "What is 12 + 7?"}], tokenize=False,
                                       add_generation_prompt=True)
    ids = ref_tok(text, return_tensors="pt", add_special_tokens=False).input_ids  # (1, T)
    assert torch.equal(tok(text, return_tensors="pt", add_special_tokens=False).input_ids, ids)
    with torch.no_grad():
        expected, got = ref(input_ids=ids).logits, model.eval()(input_ids=ids).logits  # (1, T, V)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    stamp = (folder / MATERIALIZED_MARKER).stat().st_mtime_ns
    assert smollm2_hf_folder(tmp_path_factory) == folder  # second call reuses the conversion
    assert (folder / MATERIALIZED_MARKER).stat().st_mtime_ns == stamp
