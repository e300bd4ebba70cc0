"""The ``sent`` command: a thin dispatcher over ``sent.commands.<name>.main(argv)``.

Each subcommand lives in its own module so that importing the CLI stays fast and a command's
heavy imports (torch, transformers, trl) happen only when it runs.

Mistakes are one line. A bad input (an argument, a missing or malformed artifact, a config that does not parse, an
output another job is writing) ends with ``sent <command>: <message>`` on stderr and exit code 2, no traceback: the
errors listed in :data:`USER_ERRORS` (``ValueError`` covers the validation errors, ``RolloutSchemaError`` and the
changed-settings refusal of ``sent train``; ``FileNotFoundError`` covers ``MissingArtifactError``) and argparse's
usage errors. A full disk is one line too: ``DiskFullError`` names the path being written (``sent.io``), any other
``ENOSPC`` / ``EDQUOT`` error names its file when it has one; the commands resume once space is freed. Any other
exception is a bug and keeps its traceback. ``--debug`` (before or after the command name)
or ``SENT_DEBUG=1`` re-raises every error with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from contextlib import contextmanager


COMMANDS = {
    "toy-base": ("toy_base", "build the tokenizer and tiny base model and SFT-train it offline"),
    "convert-model": ("convert_model", "turn 'smollm2', a .gguf file or a hub id into a plain HF model folder"),
    "semantic-entropy": ("semantic_entropy", "sample M answers per prompt and write the per-prompt SE table"),
    "curriculum": ("curriculum", "sort an SE table and split it into curriculum stages"),
    "train": ("train", "train GRPO / SENT / a baseline from a recipe (TrlParser)"),
    "eval": ("eval", "sample k answers per problem and score Pass@k / Avg@k"),
    "analyze": ("analyze", "run an analysis: bootstrap | linguistic | cross-domain"),
    "rollouts": ("rollouts", "import rollouts saved by verl / TRL / NeMo-RL / open-instruct / prime-rl; check a folder"),
    "report": ("report", "one run at a glance: entropy, reward, length, gate shares, token heat map, word clouds"),
}


def _usage() -> str:
    lines = ["usage: sent <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `sent <command> --help` for a command's options."]
    return "\n".join(lines)


class UsageError(ValueError):
    """A command line argparse rejects (unknown option, bad value, missing argument)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the input is wrong", reported in one line: validation (``ValueError``, which
    includes ``RolloutSchemaError`` and ``ModelSpecError``), missing or misplaced files (``FileNotFoundError``, which
    includes ``MissingArtifactError``, and its siblings for a path of the wrong kind or without permission), a config
    file that is not YAML, an output another job is writing (``LockHeldError``) and a full disk (``DiskFullError``)."""
    import yaml

    from sent.io import DiskFullError
    from sent.locks import LockHeldError

    return (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            yaml.YAMLError, LockHeldError, DiskFullError)


def one_line(err: BaseException) -> str:
    """The error's message on one line (newlines and runs of spaces collapsed; the type name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


@contextmanager
def usage_errors_raise():
    """While a command runs, argparse's usage errors raise :class:`UsageError` instead of printing the usage and
    exiting, so that they too are one line (``--help`` still prints and exits 0)."""
    original = argparse.ArgumentParser.error

    def error(parser, message):
        raise UsageError(f"{message} (see `{parser.prog} --help`)")

    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Remove the global ``--debug`` flag (before or after the command name). After ``train``, a ``--debug`` followed
    by a value is TrainingArguments' own ``--debug <option>`` and stays."""
    out, debug = [], False
    for i, arg in enumerate(argv):
        if arg == "--debug":
            after_train = bool(out) and out[0] == "train" and i + 1 < len(argv) and not argv[i + 1].startswith("-")
            if not after_train:
                debug = True
                continue
        out.append(arg)
    return out, debug


def main(argv: list[str] | None = None) -> int:
    argv, debug = split_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug or os.environ.get("SENT_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sent: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"sent.commands.{COMMANDS[name][0]}")
    if debug:
        return int(module.main(rest) or 0)
    try:
        with usage_errors_raise():
            return int(module.main(rest) or 0)
    except user_errors() as err:  # a bad input: one line, no traceback (--debug shows it)
        print(f"sent {name}: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk outside sent.io's writers (an append, a library's own file)
        from sent.io import DiskFullError, is_disk_full

        if not is_disk_full(err):
            raise
        print(f"sent {name}: {one_line(DiskFullError(err.filename))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
