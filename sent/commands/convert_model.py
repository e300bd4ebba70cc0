"""``sent convert-model``: turn any model spec into a plain HF model folder (config, safetensors, tokenizer).

    sent convert-model smollm2 --out artifacts/models/smollm2
    sent convert-model path/to/model.Q4_1.gguf --out artifacts/models/mine --dtype bfloat16

GGUF weights are dequantised to ``--dtype``; the folder then loads with plain ``AutoModelForCausalLM.from_pretrained``
and trains with ``sent train``. A folder converted earlier from the same source is reused; an HF model folder is left
as it is. Prints the folder's path. See :func:`sent.generation.materialize_model`.
"""

from __future__ import annotations

import argparse
import logging
import sys


logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent convert-model", description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="'smollm2', a .gguf file, a hub id (with --allow-download) or an HF model folder")
    p.add_argument("--out", required=True, help="output folder for the converted model")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="dtype of the saved weights (default: float32)")
    p.add_argument("--allow-download", action="store_true", help="allow fetching a hub id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sent.generation import ModelSpecError, materialize_model

    try:
        folder = materialize_model(args.spec, args.out, dtype=args.dtype, allow_download=args.allow_download)
    except (ModelSpecError, ImportError, FileExistsError) as err:  # a bad spec, a missing extra, an occupied --out
        print(f"sent convert-model: {err}", file=sys.stderr)
        return 2
    if str(folder) == str(args.spec):
        logger.info("%s is already an HF model folder; nothing converted", folder)
    print(folder)
    return 0
