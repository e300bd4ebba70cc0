"""Re-scoring imported rollouts: which checkpoint sampled each step, and its teacher-forced logp and entropy.

* :func:`resolve_checkpoints`: ``--checkpoints`` is a path pattern with ``{step}`` (``ckpt/global_step_{step}``,
  ``out/checkpoint-{step}``) or a YAML / JSON map ``step: path``; ``--base`` is checkpoint 0 (the initial model).
  The rollouts of dumped step ``s`` were sampled by the weights after ``s - lag`` updates (``--checkpoint-lag``,
  default 1: verl, TRL, NeMo-RL, open-instruct and prime-rl dump step ``s`` after its update, sampled before it);
  only that checkpoint is exact. The nearest earlier one is used only with ``allow_stale`` and the staleness (in
  steps) is recorded.
* :func:`score_sequences`: one no-grad forward per batch of left-padded ``prompt + response`` sequences, batched by
  a token budget (and a cap on the ``(rows, response, vocab)`` logits; the softmax runs in chunks of positions
  under the same cap), in fp32 on CPU or GPU, with a tqdm bar.
  For each response token: ``log softmax(z / T)`` at the sampled token and the entropy ``-sum p log p`` of the same
  temperature-scaled distribution (verl and TRL both divide the logits by the sampling temperature).
"""

from __future__ import annotations

import glob
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


logger = logging.getLogger(__name__)

#: Largest (rows x response tokens x vocabulary) logits block of one forward, in floats (256 MiB in fp32).
LOGITS_BUDGET = 1 << 26


@dataclass(frozen=True)
class CheckpointChoice:
    """The model that scores one dumped step."""

    step: int  # the dumped step
    wanted: int  # the checkpoint step that sampled it (step - lag)
    checkpoint_step: int  # the checkpoint used
    path: str

    @property
    def staleness(self) -> int:
        return self.wanted - self.checkpoint_step


def available_checkpoints(spec: str, base: str | None = None) -> dict[int, str]:
    """``{checkpoint step: path}`` named by ``spec`` (a ``{step}`` pattern or a YAML / JSON map) and ``base``."""
    found: dict[int, str] = {}
    if "{step" in spec:
        placeholder = re.compile(r"\{step(:[^}]*)?\}")
        pattern = placeholder.sub("*", spec)
        rx = re.compile("".join(r"(\d+)" if placeholder.fullmatch(part) else re.escape(part)
                                for part in re.split(r"(\{step(?::[^}]*)?\})", spec)))
        for path in glob.glob(pattern):
            m = rx.fullmatch(path)
            if m and Path(path).is_dir():
                found[int(m.group(1))] = path
    elif Path(spec).is_file() and Path(spec).suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        text = Path(spec).read_text()
        doc = json.loads(text) if spec.lower().endswith(".json") else yaml.safe_load(text)
        if not isinstance(doc, dict):
            raise ValueError(f"--checkpoints {spec}: expected a map 'step: path', got {type(doc).__name__}")
        for key, value in doc.items():
            try:
                step = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"--checkpoints {spec}: key {key!r} is not a step number") from None
            path = Path(str(value))
            found[step] = str(path if path.is_absolute() else Path(spec).parent / path)
    else:
        raise ValueError(f"--checkpoints {spec!r}: give a path pattern with {{step}} (e.g. ckpt/global_step_{{step}}) "
                         f"or a YAML/JSON map 'step: path' (a file ending in .yaml, .yml or .json)")
    if base is not None:
        found.setdefault(0, str(base))
    return dict(sorted(found.items()))


def resolve_checkpoints(spec: str | None, steps: list[int], *, lag: int = 1, allow_stale: bool = False,
                        base: str | None = None) -> dict[int, CheckpointChoice]:
    """The checkpoint of each dumped step (see the module docstring); ``ValueError`` (one line) when a step has no
    exact checkpoint and ``allow_stale`` is off, or none at all."""
    if spec is None and base is None:
        raise ValueError("re-scoring needs the checkpoints that sampled each step: --checkpoints PATTERN|MAP "
                         "(and --base MODEL for the initial model)")
    have = available_checkpoints(spec, base) if spec is not None else {0: str(base)}
    if not have:
        raise ValueError(f"--checkpoints {spec}: no checkpoint folder matches")
    out = {}
    for step in steps:
        wanted = step - lag
        earlier = [c for c in have if c <= wanted]
        if not earlier:
            raise ValueError(f"step {step} was sampled by checkpoint {wanted} (step - --checkpoint-lag {lag}); no "
                             f"checkpoint at or before it among {list(have)[:8]} (--base MODEL is checkpoint 0)")
        choice = CheckpointChoice(step, wanted, max(earlier), have[max(earlier)])
        if choice.staleness and not allow_stale:
            raise ValueError(f"step {step} was sampled by checkpoint {wanted} (step - --checkpoint-lag {lag}), which "
                             f"is not among the checkpoints; the nearest earlier is {choice.checkpoint_step} "
                             f"({choice.staleness} steps stale): pass --allow-stale to score with it (recorded)")
        out[step] = choice
    return out


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available")
    return device


def _batches(lengths: list[tuple[int, int]], token_budget: int, vocab: int) -> list[list[int]]:
    """Indices grouped into batches, longest first: padded tokens <= ``token_budget`` and logits <= the cap."""
    order = sorted(range(len(lengths)), key=lambda i: (-(lengths[i][0] + lengths[i][1]), i))
    batches, cur, max_len, max_c = [], [], 0, 0
    for i in order:
        total, c = lengths[i][0] + lengths[i][1], lengths[i][1]
        new_len, new_c = max(max_len, total), max(max_c, c)
        fits = (len(cur) + 1) * new_len <= token_budget and (len(cur) + 1) * (new_c + 1) * vocab <= LOGITS_BUDGET
        if cur and not fits:
            batches.append(cur)
            cur, new_len, new_c = [], total, c
        cur.append(i)
        max_len, max_c = new_len, new_c
    if cur:
        batches.append(cur)
    return batches


def score_sequences(model, items: list[tuple[list[int], list[int]]], *, temperature: float = 1.0,
                    token_budget: int = 8192, pad_id: int = 0, progress: bool = True,
                    desc: str = "re-scoring") -> list[tuple[np.ndarray, np.ndarray]]:
    """``(logp, entropy)`` (float32 arrays, one value per response token) of each ``(prompt_ids, response_ids)``
    under ``model`` (fp32) at ``temperature``. Prompts must be non-empty (the first response token is predicted from
    the last prompt position)."""
    import torch
    from tqdm.auto import tqdm

    if temperature <= 0:
        raise ValueError(f"--temperature {temperature} must be > 0")
    if token_budget < 1:
        raise ValueError(f"--token-budget {token_budget} must be >= 1")
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    out: list = [None] * len(items)
    batches = _batches([(len(p), len(c)) for p, c in items], token_budget, vocab)
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit="batch", disable=None if progress else True):
            P = [items[i][0] for i in batch]
            C = [items[i][1] for i in batch]
            L = max(len(p) + len(c) for p, c in zip(P, C))
            max_c = max(len(c) for c in C)
            ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
            attn = torch.zeros((len(batch), L), dtype=torch.long)
            for r, (p, c) in enumerate(zip(P, C)):
                seq = list(p) + list(c)
                ids[r, L - len(seq):] = torch.tensor(seq, dtype=torch.long)
                attn[r, L - len(seq):] = 1
            ids, attn = ids.to(device), attn.to(device)
            pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=max_c + 1).logits
            logits = logits[:, -(max_c + 1):-1]  # (b, max_c, V): position t predicts token t + 1
            targets = ids[:, L - max_c:]  # (b, max_c)
            logp, ent = torch.empty(targets.shape, device=device), torch.empty(targets.shape, device=device)
            step = max(1, LOGITS_BUDGET // max(1, len(batch) * vocab))  # positions per chunk of the softmax
            for j in range(0, max_c, step):
                lsm = torch.log_softmax(logits[:, j:j + step].float() / temperature, dim=-1)
                logp[:, j:j + step] = lsm.gather(-1, targets[:, j:j + step].unsqueeze(-1)).squeeze(-1)
                prob = lsm.exp()
                ent[:, j:j + step] = torch.where(prob > 0, -prob * lsm, torch.zeros((), device=device)).sum(-1)
                del lsm, prob
            for r, (i, c) in enumerate(zip(batch, C)):
                n = len(c)
                out[i] = (logp[r, max_c - n:].cpu().numpy().astype(np.float32),
                          ent[r, max_c - n:].cpu().numpy().astype(np.float32))
            del logits
    return out


def vocab_size(model) -> int:
    """Rows of the output embedding (the size of the distribution the entropy is taken over)."""
    return int(model.get_output_embeddings().weight.shape[0])
