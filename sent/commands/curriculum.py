"""``sent curriculum``: sort an SE table by semantic entropy and split it into curriculum stages.

    sent curriculum --se artifacts/cpu/se/math.parquet --out artifacts/cpu/curriculum/equal2 --n-stages 2 \\
        --method equal --seed 0 [--thresholds 0 2] [--quantiles 0.5]

Without ``--se``/``--out`` the paths default to ``<root>/se/<domain>.parquet`` and ``<root>/curriculum/<name>``.
The work is skipped when ``manifest.json`` already records the same source sha256 and parameters (``--force`` redoes
it). One writer per folder: ``<out>/.lock`` (:mod:`sent.locks`) while it is written. See :mod:`sent.curriculum` for
the methods.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sent.artifacts import RootPaths, manifest_file
from sent.curriculum import METHODS, ORDERS, file_sha256, read_manifest, write_curriculum
from sent.io import require_artifact
from sent.locks import command_line, writer_lock


logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent curriculum", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="artifacts/cpu", help="artifact root (default: artifacts/cpu)")
    p.add_argument("--domain", default="math", help="SE table name under <root>/se/ (default: math)")
    p.add_argument("--se", default=None, help="SE table parquet (default: <root>/se/<domain>.parquet)")
    p.add_argument("--out", default=None, help="output folder (default: <root>/curriculum/<name>)")
    p.add_argument("--name", default=None, help="curriculum name (default: <method><n_stages>, e.g. equal2)")
    p.add_argument("--n-stages", type=int, default=None,
                   help="number of stages; the released SENT scripts use 2 (default: 2, or len(cuts)+1)")
    p.add_argument("--method", choices=METHODS, default="equal", help="how to cut the sorted table (default: equal)")
    p.add_argument("--thresholds", type=float, nargs="+", default=None,
                   help="SE cut points for --method thresholds; stage i holds t_{i-1} < se <= t_i")
    p.add_argument("--quantiles", type=float, nargs="+", default=None,
                   help="fractions in (0,1) of the sorted table for --method quantiles")
    p.add_argument("--order", choices=ORDERS, default="se",
                   help="stage order: se = low to high SE (SENT); reverse = high to low; random = the same stage "
                        "sizes filled at random (controls for the curriculum confound; default: se)")
    p.add_argument("--seed", type=int, default=0, help="seed of the deterministic tie-break (default: 0)")
    p.add_argument("--force", action="store_true", help="rewrite even if an identical curriculum exists")
    return p


def _is_current(out: Path, digest: str, params: dict) -> bool:
    """True if ``out`` holds a complete curriculum of the same source file and parameters."""
    if not manifest_file(out).exists():
        return False
    m = read_manifest(out)
    same = m.get("source_sha256") == digest and all(m.get(k) == v for k, v in params.items())
    return same and all((out / s["path"]).exists() for s in m.get("stages", []))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value, method in (("--thresholds", args.thresholds, "thresholds"),
                                ("--quantiles", args.quantiles, "quantiles")):
        if value is not None and args.method != method:
            raise ValueError(f"{flag} applies only with --method {method} (got --method {args.method})")
    if args.n_stages is not None and args.n_stages < 1:
        raise ValueError(f"--n-stages must be >= 1, got {args.n_stages}")
    thresholds = [float(t) for t in args.thresholds] if args.method == "thresholds" and args.thresholds else None
    quantiles = [float(q) for q in args.quantiles] if args.method == "quantiles" and args.quantiles else None
    cuts = thresholds or quantiles
    n_stages = args.n_stages if args.n_stages is not None else (len(cuts) + 1 if cuts else 2)
    params = {"method": args.method, "order": args.order, "n_stages": n_stages, "seed": args.seed,
              "thresholds": thresholds, "quantiles": quantiles}
    paths = RootPaths(args.root)
    se_path = require_artifact(args.se or paths.se(args.domain), "sent semantic-entropy")
    out = Path(args.out) if args.out else paths.curriculum(args.name or f"{args.method}{n_stages}")
    digest = file_sha256(se_path)
    with writer_lock(out, command_line("sent curriculum", argv)):  # one writer per curriculum folder
        if not args.force and _is_current(out, digest, params):
            logger.info("curriculum %s is up to date with %s; skipping (use --force to rewrite)", out, se_path)
            return 0
        manifest = write_curriculum(se_path, out, n_stages=n_stages, method=args.method, thresholds=thresholds,
                                    quantiles=quantiles, seed=args.seed, order=args.order)
    sizes = [s["size"] for s in manifest["stages"]]
    logger.info("wrote %d stages (sizes %s) to %s", len(sizes), sizes, out)
    return 0
