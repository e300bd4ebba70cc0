"""Every `sent` command prints its help."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["toy-base", "semantic-entropy", "curriculum", "train", "eval", "analyze",
                                     "convert-model", "report"])
def test_every_command_prints_its_help(command):
    """`sent <command> --help` exits 0 (argparse %-formats help texts: a bare '%' in a field's help broke train)."""
    res = subprocess.run([sys.executable, "-m", "sent.cli", command, "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-500:]
    assert "usage" in res.stdout.lower()
