"""``sent toy-base``: build the word-level tokenizer and tiny Llama base model and SFT it offline.

    sent toy-base --out artifacts/cpu/base --profile cpu --seed 0

Writes an HF model folder (safetensors, tokenizer, generation_config, ``sent_prompt.json``) and
``base_report.json`` (held-out pass@1 and mean token entropy at T=1). Skips when the folder is
already complete. See :mod:`sent.toy` for the recipe and the stop rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import torch


logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent toy-base", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="output folder (default: <root>/base)")
    p.add_argument("--root", default=None, help="artifact root (default: artifacts/<profile>)")
    p.add_argument("--profile", default="cpu", choices=["cpu", "smoke"], help="size/budget preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock safety cap in minutes: SFT fails (saves nothing) when it passes it; off by default")
    p.add_argument("--steps", type=int, default=None, help="maximum SFT steps (profile default)")
    p.add_argument("--target-pass-at-1", type=float, default=None,
                   help="stop SFT once held-out sampled pass@1 (T=1) reaches this (profile default)")
    p.add_argument("--hidden-size", type=int, default=None, help="model width (profile default)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2 = the whole default laptop)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sent import toy

    torch.set_num_threads(max(1, args.threads))
    model_cfg, settings = toy.PROFILES[args.profile]
    overrides = {"max_minutes": args.max_minutes, "max_steps": args.steps, "target_pass_at_1": args.target_pass_at_1}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.hidden_size is not None:
        model_cfg = dataclasses.replace(model_cfg, hidden_size=args.hidden_size)
    out = args.out or f"{args.root or f'artifacts/{args.profile}'}/base"
    report = toy.build_toy_base(out, profile=args.profile, seed=args.seed, model_cfg=model_cfg, settings=settings)
    by_domain = ", ".join(f"{d} {v:.3f}" for d, v in report["pass@1_by_domain"].items())
    print(f"toy base model at {out}: pass@1 (T=1) {report['pass@1']:.3f} ({by_domain}); "
          f"mean token entropy {report['mean_token_entropy']:.3f} nats/token; "
          f"function words among the 80% lowest-entropy tokens {report['low_share_function_words']:.2f}")
    return 0
