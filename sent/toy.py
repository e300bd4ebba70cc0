"""The ``cpu`` profile's base model: a word-level tokenizer and a tiny Llama SFT-trained offline.

``sent toy-base`` calls :func:`build_toy_base`. The recipe follows the measurements in
``reference/toy-feasibility.md`` (1M-parameter Llama, batch 64, AdamW 3e-3 with warmup, loss on
completion tokens only), with one change that the measurements asked for: the chain of thought
comes from :mod:`sent.data.synthetic` / :mod:`sent.data.relations`, which carry
correctness-neutral diversity, so the base model's token entropy sits in the paper's regime
instead of on result digits alone. SFT stops early (a sampled pass@1 target), so the base model is
imperfect and diverse and RL has headroom.

Cost: 1000-1600 SFT steps of the default d=96 model. Measured on a shared, loaded 2-core machine
with one thread: 0.5-0.6 s/step, stop at step 1500, 14 min in all (pass@1 0.21: math 0.32,
relations 0.11; token entropy 0.48 nats). Estimated 6-8 minutes on an idle 2-core laptop;
on a shared, overloaded machine use ``--threads 1`` (two threads fighting for one core were 5x
slower here). ``--profile smoke`` takes about a minute (600 steps of a 2-layer d=64 model on levels 1-2 only): enough to solve
a few easy problems, so smoke RL runs see rewards; it is not a result.

Tokenizer: ``tokenizers`` WordLevel over pieces cut by one regex: ``" \\boxed{"``, a newline, a
word, a single digit, or one punctuation mark, each with its leading space attached. Decoding
concatenates the pieces (``decoders.Fuse``), so ``decode(encode(text)) == text`` exactly; that
matters because rewards parse ``\\boxed{}`` from decoded completions.

(About 460 lines: tokenizer, model, SFT loop, stop rule and the saved folder make one recipe whose parts change
together; answers are checked by :mod:`sent.answers`.)
"""

from __future__ import annotations

import logging
import math
import random
import re
from dataclasses import dataclass

import torch

from sent.answers import is_correct
from sent.data import relations, synthetic


logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>", "bos": "<s>"}
PIECE_PATTERN = r"\s?\\boxed\{|\n|\s?[A-Za-z]+|\s?\d|\s?[^\sA-Za-z\d]"
TOY_TEMPLATE = "Q: {problem}\nA:"
DOMAINS = ("math", "relations")
# Words of the toy chain of thought's scaffolding for the "which tokens are low-entropy" report (lower-cased,
# stripped): closed-class words plus the toy templates' fixed verbs and openers. Not sent.tokens' English function
# words, a different list: there "first"/"one" are numbers, "answer begin gives leaves makes next start step" content,
# and "more less plus minus times many ..." function words; using it would change low_share_function_words.
FUNCTION_WORDS = frozenset(
    "the a an is are of to and so then thus now next after that first start who than by among over which "
    "we he she it each from at with in them there step one answer gives makes leaves begin does have has".split()
)


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------
def split_pieces(text: str) -> list[str]:
    """The pre-tokenizer's pieces of ``text`` (``"is 12."`` -> ``['is', ' 1', '2', '.']``)."""
    return re.findall(PIECE_PATTERN, text)


def _corpus_texts(n_samples: int, seed: int) -> list[str]:
    from sent.data import PROMPT_TEMPLATES

    rng = random.Random(seed)
    texts = synthetic.vocabulary_texts() + relations.vocabulary_texts()
    texts += [t.replace("{problem}", "x") for t in PROMPT_TEMPLATES.values()]
    texts += [f" {d}" for d in "0123456789"] + list("0123456789")
    for i in range(n_samples):
        level = synthetic.LEVELS[i % len(synthetic.LEVELS)]
        row = _draw_row("math" if i % 2 else "relations", level, rng)
        texts += [row["problem"], " " + row["solution"]]
    return texts


def build_tokenizer(n_samples: int = 3000, seed: int = 0):
    """Word-level ``PreTrainedTokenizerFast`` covering both toy domains (left padding, no auto BOS)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces: set[str] = set()
    for text in _corpus_texts(n_samples, seed):
        pieces.update(split_pieces(text))
        pieces.update(split_pieces(" " + text))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for piece in sorted(pieces):
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIAL_TOKENS["pad"], eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"], bos_token=SPECIAL_TOKENS["bos"], padding_side="left",
        clean_up_tokenization_spaces=False, model_max_length=512,
    )


# ---------------------------------------------------------------------------------------------
# Model and data
# ---------------------------------------------------------------------------------------------
@dataclass
class ToyModelConfig:
    """Size of the tiny Llama (defaults: 4 layers, d=96, MLP 512 -> about 0.8M parameters, tied embeddings).

    d=96 reached the same held-out pass@1 at 1600 SFT steps as d=128 (0.24 vs 0.22-0.30) at about
    half the CPU time per step (0.39 vs 0.73 s on one contended core).
    """

    hidden_size: int = 96
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 256


def build_model(tokenizer, cfg: ToyModelConfig, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` sized by ``cfg`` for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"hidden_size ({cfg.hidden_size}) must be divisible by num_heads ({cfg.num_heads})")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def _draw_row(domain: str, level: int, rng: random.Random) -> dict:
    """One fresh training row (problem, answer, solution) of ``domain``; never a test-split problem."""
    while True:
        if domain == "math":
            p = synthetic.sample_problem(level, rng)
            key = p.key()
        else:
            row = relations.make_puzzle(level, rng)
            key = row["key"]
        if synthetic.split_of(f"{domain}|{key}") != "train":
            continue
        if domain == "math":
            text, cosmetic = synthetic.problem_text(p, rng)
            return {"problem": text, "answer": synthetic.canonical_answer(p.answer), "domain": domain,
                    "level": level, "solution": synthetic.solution_text(p, cosmetic, rng)}
        return {**row, "domain": domain}


def draw_rows(n: int, rng: random.Random, math_ratio: float = 0.7, levels=synthetic.LEVELS) -> list[dict]:
    """``n`` fresh training rows, a share ``math_ratio`` of them math, levels uniform."""
    if not 0.0 <= math_ratio <= 1.0:
        raise ValueError(f"math_ratio must be in [0, 1], got {math_ratio}")
    return [_draw_row("math" if rng.random() < math_ratio else "relations", rng.choice(levels), rng)
            for _ in range(n)]


def sft_batch(tokenizer, rows: list[dict], template: str = TOY_TEMPLATE) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask``/``labels``; labels are -100 except on completion + EOS."""
    prompts = tokenizer([template.replace("{problem}", r["problem"]) for r in rows], add_special_tokens=False)["input_ids"]
    comps = tokenizer([" " + r["solution"] for r in rows], add_special_tokens=False)["input_ids"]
    seqs = [p + c + [tokenizer.eos_token_id] for p, c in zip(prompts, comps)]
    width = max(map(len, seqs))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, (p, s) in enumerate(zip(prompts, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, len(p) : len(s)] = ids[i, len(p) : len(s)]
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------------------------------------
# Sampling and scoring (a small local sampler that records token entropies; the project's sampler is
# sent.generation). Answers are scored by sent.answers.is_correct, the rule of the rewards and of `sent eval`.
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_with_entropy(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 96,
                        temperature: float = 1.0, batch_size: int = 128, seed: int = 0) -> list[dict]:
    """Sample one completion per prompt with ``model.generate`` and record per-token entropies.

    Entropy of token t is H_t = -sum_v p_t(v) log p_t(v) of the temperature-scaled distribution
    (nats), as in the paper's token-entropy definition. Returns dicts with ``text``, ``tokens``
    (decoded pieces), ``entropy`` (list of floats) and ``truncated`` (no EOS within the budget).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        gen = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = gen.sequences[:, enc["input_ids"].shape[1] :].cpu()  # (B, L)
        logits = torch.stack(gen.logits, dim=1).float().cpu() / temperature  # (B, L, V)
        logp = torch.log_softmax(logits, dim=-1)
        ent = -(logp.exp() * logp).sum(-1)  # (B, L)
        for i in range(new.shape[0]):
            ids = new[i].tolist()
            n = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
            body = [t for t in ids[:n] if t != tokenizer.eos_token_id]
            out.append({"text": tokenizer.decode(body), "tokens": tokenizer.convert_ids_to_tokens(ids[:n]),
                        "entropy": ent[i, :n].tolist(), "truncated": tokenizer.eos_token_id not in ids})
    model.train(was_training)
    return out


def evaluate(model, tokenizer, rows: list[dict], *, samples: int = 1, temperature: float = 1.0,
             low_ratio: float = 0.8, seed: int = 0) -> dict:
    """Sampled pass@1 per domain and level, mean token entropy, and what the low-entropy tokens are.

    ``low_share_function_words`` is the share of closed-class words (``FUNCTION_WORDS``) among the
    ``low_ratio`` lowest-entropy tokens of all samples (the paper's low-entropy set, tau_H = 80%).
    """
    prompts = [TOY_TEMPLATE.replace("{problem}", r["problem"]) for r in rows for _ in range(samples)]
    outs = sample_with_entropy(model, tokenizer, prompts, temperature=temperature, seed=seed)
    per_domain: dict[str, list[bool]] = {}
    per_level: dict[str, list[bool]] = {}
    ent, toks = [], []
    for j, o in enumerate(outs):
        r = rows[j // samples]
        ok = bool(is_correct(o["text"], r["answer"], r["domain"]))  # None (unusable gold) counts as a miss
        per_domain.setdefault(r["domain"], []).append(ok)
        per_level.setdefault(f"{r['domain']}-{r['level']}", []).append(ok)
        ent += o["entropy"]
        toks += o["tokens"]
    order = sorted(range(len(ent)), key=ent.__getitem__)
    low = order[: int(low_ratio * len(order))]
    words = [toks[i].strip().casefold() for i in low]
    all_ok = [x for v in per_domain.values() for x in v]
    return {
        "pass@1": sum(all_ok) / max(1, len(all_ok)),
        "pass@1_by_domain": {d: sum(v) / len(v) for d, v in sorted(per_domain.items())},
        "pass@1_by_level": {k: sum(v) / len(v) for k, v in sorted(per_level.items())},
        "mean_token_entropy": sum(ent) / max(1, len(ent)),
        "mean_length": len(ent) / max(1, len(outs)),
        "truncated_ratio": sum(o["truncated"] for o in outs) / max(1, len(outs)),
        "low_entropy_cutoff": ent[low[-1]] if low else math.nan,
        "low_share_function_words": sum(w in FUNCTION_WORDS for w in words) / max(1, len(words)),
        "low_share_digits": sum(w.isdigit() for w in words) / max(1, len(words)),
        "n_samples": len(outs),
    }


def held_out_rows(n_per_domain: int, seed: int = 12345) -> list[dict]:
    """Fixed held-out *train-distribution* rows for the stop rule and the report (both domains, all levels)."""
    df = synthetic.make_math_problems(n_per_domain, split="train", seed=seed)
    dr = relations.make_relation_problems(n_per_domain, split="train", seed=seed)
    return df.to_dict("records") + dr.to_dict("records")


# ---------------------------------------------------------------------------------------------
# SFT and the saved base-model folder
# ---------------------------------------------------------------------------------------------
@dataclass
class SFTSettings:
    """SFT loop and stop rule. Defaults: the ``cpu`` profile (reference/toy-feasibility.md recipe).

    Stop rule: every ``eval_every`` steps after ``min_steps``, sample one answer per held-out row
    at T=1; stop once pass@1 >= ``target_pass_at_1`` (the base must stay imperfect and diverse so
    RL has headroom), or at ``max_steps``. Nothing here depends on wall-clock time: ``max_minutes`` (off by
    default) is a safety cap that raises instead of saving a weaker, machine-dependent model.

    Tuning (batch 64, lr 3e-3 constant; run on a GPU for speed, the curve in steps is the same on
    CPU; held-out pass@1 at T=1 on 48+48 rows, so +-0.05 noise): with d=128 pass@1 / mean token
    entropy were about 0.05 / 0.78 at step 500, 0.08 / 0.60 at 900, 0.19 / 0.53 at 1100,
    0.26 / 0.47 at 1300 and 0.30 / 0.43 at 1600 (math 0.44, relations 0.17); d=96: 0.20 / 0.47 at
    1500, 0.24 / 0.45 at 1600. Cosine decay, lr 4e-3/5e-3, width 160/192, 3 or 6 layers, batch
    32/48, math share 0.5/0.6 and smaller operands were no better per step.
    """

    max_steps: int = 1600
    max_minutes: float | None = None  # safety cap: exceeding it raises (a load-dependent stop would change the model)
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 100
    schedule: str = "constant"  # "cosine": decay to min_lr_ratio * lr at max_steps (no gain at 1000 steps)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    math_ratio: float = 0.7
    min_steps: int = 1000
    eval_every: int = 100
    eval_rows_per_domain: int = 48
    target_pass_at_1: float = 0.25
    report_rows_per_domain: int = 128
    report_samples: int = 2
    levels: tuple[int, ...] | None = None  # difficulty levels drawn for SFT (None: all); the smoke base learns 1-2

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "eval_every", "eval_rows_per_domain", "report_rows_per_domain",
                     "report_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 < self.target_pass_at_1 <= 1.0:
            raise ValueError(f"target_pass_at_1 must be in (0, 1], got {self.target_pass_at_1}")


def lr_factor(step: int, settings: SFTSettings) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to ``min_lr_ratio`` (or constant)."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return 1.0
    span = max(1, settings.max_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _length_bucketed_batches(tokenizer, settings: SFTSettings, rng: random.Random, n_batches: int = 8):
    """Draw ``n_batches`` batches at once, group rows of similar length, shuffle the batch order.

    Levels differ 3x in length, so random batches are half padding; bucketing halves the cost of
    a step without changing which rows are seen.
    """
    levels = settings.levels or synthetic.LEVELS
    rows = draw_rows(settings.batch_size * n_batches, rng, settings.math_ratio, levels=levels)
    lengths = [len(split_pieces(r["problem"] + " " + r["solution"])) for r in rows]
    rows = [rows[i] for i in sorted(range(len(rows)), key=lengths.__getitem__)]
    batches = [rows[i : i + settings.batch_size] for i in range(0, len(rows), settings.batch_size)]
    rng.shuffle(batches)
    return batches


def sft_train(model, tokenizer, settings: SFTSettings, seed: int = 0) -> dict:
    """Plain torch SFT on fresh problems of both domains; returns the step/stop history."""
    import time

    from tqdm.auto import tqdm

    rng = random.Random(f"sft-{seed}")
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.98),
                            weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, settings))
    eval_rows = held_out_rows(settings.eval_rows_per_domain, seed=1000 + seed)
    history, stop_reason, t0, queue = [], "max_steps", time.monotonic(), []
    model.train()
    bar = tqdm(range(1, settings.max_steps + 1), desc="toy-base SFT", mininterval=5)
    for step in bar:
        if not queue:
            queue = _length_bucketed_batches(tokenizer, settings, rng)
        batch = {k: v.to(model.device) for k, v in sft_batch(tokenizer, queue.pop()).items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if settings.max_minutes is not None and time.monotonic() - t0 > 60 * settings.max_minutes:
            raise RuntimeError(f"toy-base SFT passed --max-minutes {settings.max_minutes} at step {step}; a base cut "
                               "short by wall-clock time would depend on machine load, so none is saved. Rerun "
                               "without --max-minutes (the stop rule is by steps and held-out pass@1)")
        if step >= settings.min_steps and step % settings.eval_every == 0:
            ev = evaluate(model, tokenizer, eval_rows, seed=step)
            history.append({"step": step, "loss": loss.item(), "pass@1": ev["pass@1"],
                            "pass@1_by_domain": ev["pass@1_by_domain"], "entropy": ev["mean_token_entropy"],
                            "low_share_function_words": ev["low_share_function_words"]})
            logger.info("SFT step %d: loss %.3f, held-out pass@1 %.3f, token entropy %.3f", step, loss.item(),
                        ev["pass@1"], ev["mean_token_entropy"])
            if ev["pass@1"] >= settings.target_pass_at_1:
                stop_reason = "target_pass_at_1"
                break
    bar.close()
    return {"steps": step, "stop_reason": stop_reason, "history": history, "final_loss": loss.item()}


PROFILES = {
    "cpu": (ToyModelConfig(), SFTSettings()),
    # smoke: a minute of SFT on levels 1-2 only, so the base solves some easy problems and RL has a reward signal
    "smoke": (ToyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256),
              SFTSettings(max_steps=600, batch_size=32, warmup_steps=20, min_steps=600, eval_every=600,
                          eval_rows_per_domain=4, target_pass_at_1=1.0, report_rows_per_domain=24,
                          report_samples=1, levels=(1, 2))),
}
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                  "sent_prompt.json", "base_report.json")


def is_complete(path) -> bool:
    """True if ``path`` holds a finished toy base model (every file of ``REQUIRED_FILES``)."""
    from pathlib import Path

    return all((Path(path) / f).exists() for f in REQUIRED_FILES)


def build_toy_base(out, profile: str = "cpu", seed: int = 0, model_cfg: ToyModelConfig | None = None,
                   settings: SFTSettings | None = None) -> dict:
    """Build tokenizer + tiny Llama, SFT it, and write an HF folder + ``base_report.json`` to ``out``.

    Skips (and returns the stored report) when ``out`` is already complete. Writes into a
    temporary sibling folder and renames it onto ``out`` at the end, so a killed run leaves nothing
    half-written under the final name.
    """
    import json
    import os
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from transformers import GenerationConfig

    from sent.io import atomic_write_json

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    out = Path(out)
    if is_complete(out):
        logger.info("toy base model already complete at %s; skipping", out)
        return json.loads((out / "base_report.json").read_text())
    default_model, default_sft = PROFILES[profile]
    model_cfg, settings = model_cfg or default_model, settings or default_sft
    t0 = time.monotonic()
    tokenizer = build_tokenizer(seed=seed)
    model = build_model(tokenizer, model_cfg, seed=seed)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("toy base: vocab %d, %.2fM parameters, profile %s", len(tokenizer), n_params / 1e6, profile)
    sft = sft_train(model, tokenizer, settings, seed=seed)
    rows = held_out_rows(settings.report_rows_per_domain, seed=777 + seed)
    report = evaluate(model.eval(), tokenizer, rows, samples=settings.report_samples, seed=seed)
    report.update({"profile": profile, "seed": seed, "n_params": n_params, "vocab_size": len(tokenizer),
                   "sft": sft, "model_config": vars(model_cfg), "sft_settings": vars(settings),
                   "temperature": 1.0,
                   "note": "pass@1 and token entropy measured by sampling at T=1 on held-out train-distribution "
                           "problems (report_samples per problem)"})

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.generation_config = GenerationConfig(
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            max_new_tokens=96)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "sent_prompt.json", {
            "template": TOY_TEMPLATE, "template_name": "toy", "domains": list(DOMAINS),
            "equivalence": {"math": "math", "relations": "exact"}, "completion_prefix": " ",
            "max_new_tokens": 96, "levels": list(synthetic.LEVELS)})
        atomic_write_json(tmp / "base_report.json", report)  # settings and results only: same seed, same report
        atomic_write_json(tmp / "build_timing.json", {"total_seconds": time.monotonic() - t0})  # machine-dependent
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the final folder is an ordinary one
        if out.exists():
            shutil.rmtree(out)  # an incomplete folder from an earlier run
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return report
