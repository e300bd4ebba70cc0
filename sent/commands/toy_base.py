"""``sent toy-base``: build the word-level tokenizer and tiny Llama base model and SFT it offline.

    sent toy-base --out artifacts/cpu/base --profile cpu --seed 0

Writes an HF model folder (safetensors, tokenizer, generation_config, ``sent_prompt.json``) and
``base_report.json`` (held-out pass@1 and mean token entropy at T=1). Skips when the folder is
already complete. See :mod:`sent.toy` for the recipe and the stop rule.

The build depends on nothing but its settings (profile, seed, model size, SFT settings, the code that makes the
model and its data, torch's version), so a finished base is cached under ``$SENT_CACHE/toy-base/<hash of those>``
(default ``~/.cache/sent``) and copied from there when the same settings ask for it again: a rerun from scratch, a
second artifact root, CI. ``--no-cache`` builds afresh; ``SENT_CACHE=off`` disables the cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

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
    p.add_argument("--no-cache", action="store_true", help="build afresh instead of copying a cached identical base")
    return p


# Source files whose code shapes the base model: any edit to them invalidates the cache.
_SHAPING_SOURCES = ("toy.py", "answers.py", "data/__init__.py", "data/synthetic.py", "data/relations.py")


def cache_key(profile: str, seed: int, model_cfg, settings) -> str:
    """Hash of everything that determines the base's weights and report (never the machine or the clock)."""
    import sent

    pkg = Path(sent.__file__).parent
    shaping = {k: v for k, v in dataclasses.asdict(settings).items() if k != "max_minutes"}
    blob = {"profile": profile, "seed": seed, "model": dataclasses.asdict(model_cfg), "sft": shaping,
            "torch": torch.__version__.split("+")[0],
            "code": {f: hashlib.sha256((pkg / f).read_bytes()).hexdigest() for f in _SHAPING_SOURCES
                     if (pkg / f).exists()}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path | None:
    """``$SENT_CACHE/toy-base`` (default ``~/.cache/sent/toy-base``); None when ``SENT_CACHE=off``."""
    root = os.environ.get("SENT_CACHE", "")
    if root.lower() in ("off", "0", "none"):
        return None
    return Path(root or Path.home() / ".cache" / "sent") / "toy-base"


def _copy_tree_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        tmp.chmod(0o755)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sent import toy

    torch.set_num_threads(max(1, args.threads))
    model_cfg, settings = toy.PROFILES[args.profile]
    overrides = {"max_minutes": args.max_minutes, "max_steps": args.steps, "target_pass_at_1": args.target_pass_at_1}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.hidden_size is not None:
        model_cfg = dataclasses.replace(model_cfg, hidden_size=args.hidden_size)
    out = Path(args.out or f"{args.root or f'artifacts/{args.profile}'}/base")
    key = cache_key(args.profile, args.seed, model_cfg, settings)
    cache = None if args.no_cache else cache_dir()
    cached = cache / key if cache is not None else None
    if not toy.is_complete(out) and cached is not None and toy.is_complete(cached):
        _copy_tree_atomic(cached, out)
        print(f"toy base: copied the cached build {cached} (same settings and code; --no-cache to rebuild)")
    report = toy.build_toy_base(out, profile=args.profile, seed=args.seed, model_cfg=model_cfg, settings=settings)
    if cached is not None and not toy.is_complete(cached):
        try:
            _copy_tree_atomic(out, cached)
        except OSError as err:  # a read-only or full cache never fails the build
            logger.warning("toy base: could not cache the build at %s (%s)", cached, err)
    by_domain = ", ".join(f"{d} {v:.3f}" for d, v in report["pass@1_by_domain"].items())
    print(f"toy base model at {out}: pass@1 (T=1) {report['pass@1']:.3f} ({by_domain}); "
          f"mean token entropy {report['mean_token_entropy']:.3f} nats/token; "
          f"function words among the 80% lowest-entropy tokens {report['low_share_function_words']:.2f}")
    return 0
