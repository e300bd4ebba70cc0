"""Tokens of imported rollouts: the dump's ids, or the prompt rendered and the response re-tokenised.

* :func:`render_prompt`: a chat-message prompt through the tokenizer's chat template (generation prompt added, as TRL
  and verl render it); a string prompt as the trainers tokenise a plain prompt (``tokenizer(text)``).
* :func:`prompt_map`: ``--prompts DATA`` maps verl's dumped ``input`` (the rendered prompt decoded with special
  tokens skipped, so chat markers are gone) back to the prompt's exact token ids.
* :func:`tokenize_rows`: fills what the dump lacks and counts the responses whose text does not round-trip
  (``decode(encode(text)) != text``: the re-tokenised ids cannot be the sampled ones). A round-trip is necessary, not
  sufficient: a sampler may emit a non-canonical tokenisation of the same text, which no re-tokenisation recovers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sent.rollout_formats import RawRow


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    from sent.generation import resolve_model_spec

    source = resolve_model_spec(path)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    return AutoTokenizer.from_pretrained(source.location, local_files_only=True, **kwargs)


def _ids(encoded) -> list[int]:
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return [int(i) for i in (ids[0] if ids and isinstance(ids[0], list) else ids)]


def render_prompt(prompt, tok) -> list[int]:
    """Token ids of a prompt: a message list through the chat template (generation prompt added), a string as the
    trainers tokenise a plain prompt (``tokenizer(text)``, special tokens as the tokenizer adds them)."""
    if isinstance(prompt, list):
        if not getattr(tok, "chat_template", None):
            raise ValueError("the prompts are chat messages but the tokenizer has no chat template (--tokenizer)")
        return _ids(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    return _ids(tok(prompt))


def prompt_map(path: str, tok) -> dict[str, list[int]]:
    """``--prompts DATA`` (parquet / jsonl / json with a ``prompt`` column of message lists or strings, e.g. verl's
    training parquet): ``{text as verl dumps it: token ids}``, where verl's ``input`` is the rendered prompt decoded
    with special tokens skipped."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--prompts {path}: no such file")
    df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_json(p, lines=p.suffix == ".jsonl")
    if "prompt" not in df.columns:
        raise ValueError(f"--prompts {path}: no 'prompt' column (columns: {list(df.columns)})")
    out = {}
    for prompt in df["prompt"]:
        prompt = prompt.tolist() if isinstance(prompt, np.ndarray) else prompt
        if isinstance(prompt, list):
            prompt = [dict(m) for m in prompt]
            if not getattr(tok, "chat_template", None):
                raise ValueError(f"--prompts {path}: chat messages, but the tokenizer has no chat template")
            text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            ids = _ids(tok(text, add_special_tokens=False))  # verl's RLHFDataset
        else:
            ids = _ids(tok(str(prompt)))
        out[tok.decode(ids, skip_special_tokens=True)] = ids
    return out


def tokenize_rows(rows: list[RawRow], tok, s) -> dict:
    """Fill the prompt and response ids the dump lacks (see the module docstring); returns counts."""
    mapping = prompt_map(s.prompts, tok) if s.prompts else None
    stats = {"rows": len(rows), "exact": 0, "retokenised": 0, "not_round_trip": 0, "prompts_mapped": 0,
             "prompts_unmapped": 0, "not_round_trip_examples": []}
    eos = tok.eos_token_id
    if s.add_eos and eos is None:
        raise ValueError("--add-eos: the tokenizer has no EOS token")
    for r in rows:
        if r.prompt_ids is None:
            if mapping is not None:
                hit = mapping.get(r.prompt) if isinstance(r.prompt, str) else None
                hit = hit if hit is not None else mapping.get(str(r.prompt).strip())
                stats["prompts_mapped" if hit is not None else "prompts_unmapped"] += 1
                r.prompt_ids = list(hit) if hit is not None else render_prompt(r.prompt, tok)
            else:
                r.prompt_ids = render_prompt(r.prompt, tok)
        if r.completion_ids is None:
            ids = _ids(tok(r.completion, add_special_tokens=False))
            if tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) != r.completion:
                stats["not_round_trip"] += 1
                if len(stats["not_round_trip_examples"]) < 3:
                    stats["not_round_trip_examples"].append(r.where)
            if s.add_eos and (s.max_completion_length is None or len(ids) < s.max_completion_length):
                ids.append(int(eos))
            r.completion_ids, stats["retokenised"] = ids, stats["retokenised"] + 1
        else:
            stats["exact"] += 1
    stats["not_round_trip_share"] = stats["not_round_trip"] / max(1, stats["retokenised"])
    if stats["not_round_trip"]:
        s.warn(f"{stats['not_round_trip']} of {stats['retokenised']} re-tokenised responses do not round-trip "
               f"(decode(encode(text)) != text), e.g. {stats['not_round_trip_examples'][0]}")
    if stats["prompts_unmapped"]:
        s.warn(f"{stats['prompts_unmapped']} prompts not found in --prompts {s.prompts}: tokenised from the dumped text")
    return stats
