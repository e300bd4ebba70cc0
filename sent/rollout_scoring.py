"""Re-scoring imported rollouts: which checkpoint sampled each step, and its teacher-forced logp and entropy.

* :func:`resolve_checkpoints`: ``--checkpoints`` is a path pattern with ``{step}`` (``ckpt/global_step_{step}``,
  ``out/checkpoint-{step}``) or a YAML / JSON map ``step: path``; ``--base`` is checkpoint 0 (the initial model).
  The rollouts of dumped step ``s`` were sampled by checkpoint :func:`sampler_checkpoint` ``(s, lag, U)`` =
  ``(s - lag) // U * U``: the weights after ``s - lag`` updates (``--checkpoint-lag``, default 1: verl, TRL,
  NeMo-RL, open-instruct and prime-rl dump step ``s`` after its update, sampled before it), taken back to the first
  update of its generation batch when one batch serves ``U`` optimizer steps (``--updates-per-generation``: TRL with
  ``steps_per_generation > gradient_accumulation_steps`` or ``num_iterations > 1`` writes its latest generation
  batch at every logging step; verl's step is a whole generation batch, so U = 1 there). Only that checkpoint is
  exact. The nearest earlier one is used only with ``allow_stale`` and the staleness (in steps) is recorded.
* :func:`score_sequences`: one no-grad forward per batch of left-padded ``prompt + response`` sequences, batched by
  a token budget, in fp32 on CPU or GPU, with a tqdm bar. The LM head and the softmax run on the scored positions
  only, in chunks of at most :data:`LOGITS_BUDGET` logits (:func:`split_head`); a model whose logits are not
  ``head(last hidden state)`` goes through its own forward, its batches then also capped by the logits they make.
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
    wanted: int  # the checkpoint step that sampled it (sampler_checkpoint)
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


def sampler_checkpoint(step: int, lag: int = 1, updates_per_generation: int = 1) -> int:
    """The checkpoint (optimizer steps done) whose weights sampled dumped step ``step``: ``step - lag`` taken back to
    the first update of its generation batch, ``(step - lag) // U * U``. With U = 2 and lag 1: steps 1, 2 -> 0;
    steps 3, 4 -> 2 (the second update of a batch trains on rollouts that the batch's first weights sampled)."""
    if updates_per_generation < 1:
        raise ValueError(f"--updates-per-generation {updates_per_generation} must be >= 1")
    return (step - lag) // updates_per_generation * updates_per_generation


def resolve_checkpoints(spec: str | None, steps: list[int], *, lag: int = 1, allow_stale: bool = False,
                        base: str | None = None, updates_per_generation: int = 1) -> dict[int, CheckpointChoice]:
    """The checkpoint of each dumped step (see the module docstring); ``ValueError`` (one line) when a step has no
    exact checkpoint and ``allow_stale`` is off, or none at all."""
    if spec is None and base is None:
        raise ValueError("re-scoring needs the checkpoints that sampled each step: --checkpoints PATTERN|MAP "
                         "(and --base MODEL for the initial model)")
    have = available_checkpoints(spec, base) if spec is not None else {0: str(base)}
    if not have:
        raise ValueError(f"--checkpoints {spec}: no checkpoint folder matches")
    U = updates_per_generation
    rule = f"step - --checkpoint-lag {lag}" + (f", back to the first of its batch's {U} updates" if U > 1 else "")
    out = {}
    for step in steps:
        wanted = sampler_checkpoint(step, lag, U)
        earlier = [c for c in have if c <= wanted]
        if not earlier:
            raise ValueError(f"step {step} was sampled by checkpoint {wanted} ({rule}); no checkpoint at or before it "
                             f"among {list(have)[:8]} (--base MODEL is checkpoint 0)")
        choice = CheckpointChoice(step, wanted, max(earlier), have[max(earlier)])
        if choice.staleness and not allow_stale:
            raise ValueError(f"step {step} was sampled by checkpoint {wanted} ({rule}), which is not among the "
                             f"checkpoints; the nearest earlier is {choice.checkpoint_step} "
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
    """Indices grouped into batches, longest first: padded tokens <= ``token_budget`` and, when ``vocab`` > 0 (the
    model's own forward makes every row's logits at once), logits <= the cap."""
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


def split_head(model, item: tuple[list[int], list[int]]):
    """``(body, head)`` when ``head(body(...).last_hidden_state)`` is the model's own logits, checked on ``item``'s
    first positions; else None. With them the LM head runs on the scored positions only, in chunks, so the batch is
    bounded by the token budget alone (a 152k vocabulary no longer caps it at one row). Models that post-process
    their logits (soft-capping, scaling) fail the check and are scored through their own forward."""
    import torch

    try:
        body, head = model.get_decoder(), model.get_output_embeddings()
        if body is model or head is None:
            return None
        device = next(model.parameters()).device
        ids = torch.tensor([list(item[0]) + list(item[1])[:1]], dtype=torch.long, device=device)
        with torch.no_grad():
            want = model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
            got = head(body(input_ids=ids).last_hidden_state[0, -1]).float()
    except Exception as err:  # noqa: BLE001 - any failure means "not verified": use the model's own forward
        logger.debug("re-scoring through the model's own forward (%s)", err)
        return None
    return (body, head) if torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())) else None


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
    vocab = vocab_size(model)
    out: list = [None] * len(items)
    if not items:
        return out
    split = split_head(model, min(items, key=lambda it: len(it[0])))
    batches = _batches([(len(p), len(c)) for p, c in items], token_budget, 0 if split else vocab)
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
            if split:  # hidden states of the positions that predict a response token: (b, max_c, H)
                src = split[0](input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state
            else:  # the model's own logits: (b, max_c, V)
                src = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=max_c + 1).logits
            src = src[:, -(max_c + 1):-1]  # position t predicts token t + 1
            n = torch.tensor([len(c) for c in C], device=device)
            rows, cols = (torch.arange(max_c, device=device)[None, :] >= (max_c - n)[:, None]).nonzero(as_tuple=True)
            targets = ids[:, L - max_c:][rows, cols]  # (N,) the scored tokens, row by row (responses are right-aligned)
            logp, ent = torch.empty(len(targets), device=device), torch.empty(len(targets), device=device)
            step = max(1, LOGITS_BUDGET // vocab)  # scored positions per chunk of the LM head and the softmax
            for j in range(0, len(targets), step):
                z = src[rows[j:j + step], cols[j:j + step]]  # (k, H) or (k, V)
                lsm = torch.log_softmax((split[1](z) if split else z).float() / temperature, dim=-1)  # (k, V)
                logp[j:j + step] = lsm.gather(-1, targets[j:j + step, None]).squeeze(-1)
                prob = lsm.exp()
                ent[j:j + step] = torch.where(prob > 0, -prob * lsm, torch.zeros((), device=device)).sum(-1)
                del lsm, prob, z
            logp, ent = logp.cpu().numpy().astype(np.float32), ent.cpu().numpy().astype(np.float32)
            k = 0
            for i, c in zip(batch, C):
                out[i] = (logp[k:k + len(c)], ent[k:k + len(c)])
                k += len(c)
            del src
    return out


def vocab_size(model) -> int:
    """Rows of the output embedding (the size of the distribution the entropy is taken over)."""
    return int(model.get_output_embeddings().weight.shape[0])
