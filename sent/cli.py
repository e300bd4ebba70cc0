"""The ``sent`` command: a thin dispatcher over ``sent.commands.<name>.main(argv)``.

Each subcommand lives in its own module so that importing the CLI stays fast and a command's
heavy imports (torch, transformers, trl) happen only when it runs.
"""

from __future__ import annotations

import importlib
import logging
import sys


COMMANDS = {
    "toy-base": ("toy_base", "build the tokenizer and tiny base model and SFT-train it offline"),
    "convert-model": ("convert_model", "turn 'smollm2', a .gguf file or a hub id into a plain HF model folder"),
    "semantic-entropy": ("semantic_entropy", "sample M answers per prompt and write the per-prompt SE table"),
    "curriculum": ("curriculum", "sort an SE table and split it into curriculum stages"),
    "train": ("train", "train GRPO / SENT / a baseline from a recipe (TrlParser)"),
    "eval": ("eval", "sample k answers per problem and score Pass@k / Avg@k"),
    "analyze": ("analyze", "run an analysis: bootstrap | linguistic | cross-domain"),
}


def _usage() -> str:
    lines = ["usage: sent <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `sent <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sent: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"sent.commands.{COMMANDS[name][0]}")
    from sent.io import MissingArtifactError

    try:
        return int(module.main(rest) or 0)
    except MissingArtifactError as err:  # the message names the command that makes the artifact
        print(f"sent {name}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
