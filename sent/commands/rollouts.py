"""``sent rollouts import | check``: bring rollouts saved by other trainers into the rollout schema, and check a folder.

    sent rollouts import --from verl ckpts/rollout_data --out imported/verl --checkpoints 'ckpts/global_step_{step}' \\
        --base Qwen2.5-Math-1.5B --temperature 1.0
    sent rollouts import --from trl out/grpo --out imported/trl --checkpoints 'out/grpo/checkpoint-{step}' \\
        --base Qwen2.5-Math-1.5B --group-size 8 --reward 'accuracy_reward=1,format_reward=1'
    sent rollouts check imported/verl

``import`` writes ``<out>/step_<step:06d>.parquet`` (provenance in each file's ``sent`` metadata, key ``import``) and
``<out>/import.json``; ``sent analyze bootstrap --rollouts <out>`` reads them. One writer per folder: ``<out>/.lock``.
``check`` reads a folder as every analysis does and prints one line per step, or the one-line reason it is refused.
See docs/ANALYSIS.md, "Importing rollouts from other trainers", and :mod:`sent.rollout_import`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sent.rollout_formats import FORMATS


logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent rollouts", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    i = sub.add_parser("import", help="import a verl / TRL / NeMo-RL / open-instruct / prime-rl rollout dump")
    i.add_argument("src", help="the dump: a folder (or one file) as the framework writes it")
    i.add_argument("--from", dest="fmt", required=True, choices=FORMATS, help="the framework that wrote the dump")
    i.add_argument("--out", required=True, help="output folder for step_*.parquet and import.json")
    i.add_argument("--reward", default=None,
                   help="reward column, or a weighted sum 'a=0.5,b=0.5' (default: verl 'score', NeMo-RL 'rewards', "
                        "open-instruct 'reward', TRL its one reward column)")
    i.add_argument("--group-size", type=int, default=None,
                   help="responses per prompt (TRL num_generations, prime-rl blocks); default: inferred from runs of "
                        "identical prompts; for verl and NeMo-RL (grouped by identical prompts) the expected size, "
                        "other sizes are warned about")
    i.add_argument("--prompts", default=None,
                   help="verl: the training data (parquet/jsonl with a 'prompt' column) to recover the exact chat "
                        "prompt behind the dumped 'input' text")
    i.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the checkpoint's)")
    i.add_argument("--checkpoints", default=None,
                   help="checkpoint folders: a pattern with {step} (e.g. 'ckpt/global_step_{step}') or a YAML/JSON "
                        "map 'step: path'; not needed when the dump has the trainer's logp and entropy (prime-rl)")
    i.add_argument("--base", default=None, help="the initial model (checkpoint 0), which sampled the first step")
    i.add_argument("--checkpoint-lag", type=int, default=1,
                   help="dumped step s was sampled by checkpoint s - LAG (default 1: the weights before its update)")
    i.add_argument("--updates-per-generation", type=int, default=1, metavar="U",
                   help="optimizer steps one generation batch served (TRL: steps_per_generation x num_iterations / "
                        "gradient_accumulation_steps; verl, NeMo-RL, open-instruct, prime-rl: 1, their step is a "
                        "generation batch): step s was sampled by checkpoint (s - LAG) // U * U, the weights before "
                        "the batch's first update (default 1)")
    i.add_argument("--allow-stale", action="store_true",
                   help="score a step with the nearest earlier checkpoint when its own is missing (recorded)")
    i.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature: logp and entropy are taken of softmax(logits / T) (default 1.0)")
    i.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    i.add_argument("--token-budget", type=int, default=8192, help="padded tokens per forward batch (default 8192)")
    i.add_argument("--advantage", default=None, choices=["grpo", "dr_grpo", "grpo_batch_std", "rloo", "recorded"],
                   help="advantage rule (default: the source framework's; docs/ANALYSIS.md)")
    i.add_argument("--adv-eps", type=float, default=None,
                   help="eps of the std scaling (default: the framework's: verl 1e-6, TRL 1e-4, open-instruct 1e-8)")
    i.add_argument("--add-eos", action="store_true",
                   help="append EOS to re-tokenised responses (the trainers score it when a response ended on EOS; "
                        "text dumps drop it)")
    i.add_argument("--max-completion-length", type=int, default=None,
                   help="with --add-eos: responses this long were cut, they get no EOS")
    i.add_argument("--steps", type=int, nargs="+", default=None, help="only these steps")
    i.add_argument("--drop-degenerate-steps", action="store_true",
                   help="skip steps whose groups all have constant rewards (default: refuse them)")
    i.add_argument("--overwrite", action="store_true", help="replace step files already in --out")
    i.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.set_defaults(func=_import)

    c = sub.add_parser("check", help="read a rollout folder as the analyses do; one line per step")
    c.add_argument("rollouts", help="run folder or a folder of step_*.parquet")
    c.add_argument("--steps", type=int, nargs="+", default=None, help="only rows whose step column is one of these")
    c.set_defaults(func=_check)
    return p


def _import(args, argv) -> int:
    from sent.locks import command_line, writer_lock
    from sent.rollout_import import ImportSettings, import_rollouts

    for flag, value, low in (("--group-size", args.group_size, 1), ("--token-budget", args.token_budget, 1),
                             ("--checkpoint-lag", args.checkpoint_lag, 0), ("--threads", args.threads, 1),
                             ("--updates-per-generation", args.updates_per_generation, 1),
                             ("--max-completion-length", args.max_completion_length, 1)):
        if value is not None and value < low:
            raise ValueError(f"{flag} {value} must be >= {low}")
    if args.temperature <= 0:
        raise ValueError(f"--temperature {args.temperature} must be > 0")
    if args.adv_eps is not None and args.adv_eps < 0:
        raise ValueError(f"--adv-eps {args.adv_eps} must be >= 0")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = ImportSettings(
        fmt=args.fmt, src=args.src, out=args.out, reward=args.reward, group_size=args.group_size,
        prompts=args.prompts, tokenizer=args.tokenizer, checkpoints=args.checkpoints, base=args.base,
        checkpoint_lag=args.checkpoint_lag, updates_per_generation=args.updates_per_generation,
        allow_stale=args.allow_stale, temperature=args.temperature,
        device=args.device, token_budget=args.token_budget, advantage=args.advantage, adv_eps=args.adv_eps,
        add_eos=args.add_eos, max_completion_length=args.max_completion_length, steps=args.steps,
        drop_degenerate_steps=args.drop_degenerate_steps, overwrite=args.overwrite, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out, command_line("sent rollouts", argv)):
        summary = import_rollouts(settings)
    steps = summary["steps"]
    notes = [steps[0]["scoring"], steps[0]["tokenisation"]]
    if summary["tokens"].get("retokenised"):
        notes.append(f"{summary['tokens']['not_round_trip_share']:.1%} of re-tokenised responses do not round-trip")
    stale = sum(1 for m in steps if m.get("staleness"))
    if stale:
        notes.append(f"{stale} steps scored with a stale checkpoint")
    diffs = [m["recorded_advantage_max_abs_diff"] for m in steps if m["recorded_advantage_max_abs_diff"] is not None]
    if diffs:
        notes.append(f"largest |advantage - the dump's| = {max(diffs):.3g} ({steps[0]['advantage_rule']['rule']})")
    logger.info("rollouts import: %d steps (%d rows) from %s -> %s; %s", len(steps),
                sum(sum(m["group_sizes"]) for m in steps), args.src, out, "; ".join(notes))
    return 0


def _check(args, argv) -> int:
    from sent.artifacts import read_rollouts

    df = read_rollouts(args.rollouts, steps=args.steps, command="sent rollouts import --from <trainer> SRC --out DIR` or `sent train --record_rollouts_every N")
    for step, g in df.groupby("step"):
        sizes = g.groupby("prompt_id").size()
        varying = int((g.groupby("prompt_id")["reward"].nunique() > 1).sum())
        note = "" if varying else " (covariance undefined: no group with varying rewards)"
        print(f"step {step}: {len(g)} responses, {len(sizes)} groups (sizes {sizes.min()}-{sizes.max()}), "
              f"{varying} with varying reward, {int(g['tokens'].map(len).sum())} tokens{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, argv) or 0)
