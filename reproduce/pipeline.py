"""Run the whole reproduction for one profile: base model -> SE -> curriculum -> train -> eval ->
notebooks -> analyses -> summary. Called by reproduce/run_all.sh; every step is a `sent` command or a
papermill notebook, and each one skips finished work, so rerunning after a kill resumes.

The plan of a profile lives in reproduce/profiles/<profile>.yaml (runs, methods, ablations, sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml


REPO = Path(__file__).resolve().parents[1]
STEPS = ("base", "se", "curriculum", "train", "eval", "analysis", "notebooks", "summary")


@dataclass
class Job:
    name: str
    argv: list[str]
    done: Path | None = None  # the job is skipped when this file exists
    log: Path | None = None
    env: dict = field(default_factory=dict)


def _fmt(value, ctx: dict):
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, list):
        return [_fmt(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _fmt(v, ctx) for k, v in value.items()}
    return value


def _flags(options: dict) -> list[str]:
    out: list[str] = []
    for key, val in options.items():
        out += [f"--{key}"] if val == "" else [f"--{key}", str(val)]  # "" = a bare switch
    return out


def plan(profile: dict, root: Path, seeds: int, log_dir: Path, out_dir: Path) -> dict[str, list[Job]]:
    """Expand a profile into jobs per step."""
    ctx = {"root": str(root), "profile": profile["profile"], "repo": str(REPO)}
    p = _fmt(profile, ctx)
    jobs: dict[str, list[Job]] = {s: [] for s in STEPS}

    def log(name: str) -> Path:
        return log_dir / f"{name}.log"

    if p.get("base"):  # paper profiles start from a hub model: no base step
        jobs["base"] = [Job("base", ["sent", *p["base"]["argv"]], root / p["base"]["done"], log("base"))]
    for domain, opts in p["semantic_entropy"].items():
        argv = ["sent", "semantic-entropy", "--model", p["model"], "--root", str(root), "--domain", domain, *_flags(opts)]
        jobs["se"].append(Job(f"se-{domain}", argv, root / "se" / f"{domain}.parquet", log(f"se-{domain}")))
    for name, opts in p["curricula"].items():
        out = root / "curriculum" / name
        argv = ["sent", "curriculum", "--se", str(root / "se" / f"{opts['domain']}.parquet"), "--out", str(out),
                "--n-stages", str(opts["n_stages"]), "--method", opts.get("method", "equal"), "--seed", "0"]
        jobs["curriculum"].append(Job(f"curriculum-{name}", argv, out / "manifest.json", log(f"curriculum-{name}")))
    runs = p["runs"]
    for seed in range(seeds):
        for run, opts in runs.items():
            recipe = resolve_recipe(p, run, opts, root, seed)
            path = root / "recipes" / f"{run}-seed{seed}.yaml"
            write_if_changed(path, yaml.safe_dump(recipe, sort_keys=True))
            run_dir = root / "runs" / run / f"seed{seed}"
            argv = ["sent", "train", "--config", str(path)]
            jobs["train"].append(Job(f"train-{run}-s{seed}", argv, run_dir / "DONE", log(f"train-{run}-s{seed}")))
    ev = p["eval"]
    eval_targets = [("base", p["model"], root / "eval" / "base", "math")]
    for seed in range(seeds):
        for run, opts in runs.items():
            run_dir = root / "runs" / run / f"seed{seed}"
            eval_targets.append((f"{run}-s{seed}", str(run_dir / "final"), run_dir / "eval", opts.get("domain", "math")))
    for name, model, out, domain in eval_targets:
        suites = ev["suites_by_domain"].get(domain, ev["suites"])
        argv = ["sent", "eval", "--model", model, "--out", str(out), "--suites", ",".join(suites), *_flags(ev["options"])]
        jobs["eval"].append(Job(f"eval-{name}", argv, out / "summary.json", log(f"eval-{name}")))
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb in p["notebooks"]:
        nb_out = out_dir / "notebooks" / nb
        argv = [sys.executable, "-m", "papermill", str(REPO / "notebooks" / nb), str(nb_out), "--kernel", "python3",
                "-p", "root", str(root), "-p", "profile", p["profile"], "-p", "out_dir", str(out_dir), "--cwd", str(REPO)]
        jobs["notebooks"].append(Job(f"nb-{nb}", argv, None, log(f"nb-{nb}")))
    for name, argv in p.get("analysis", {}).items():
        jobs["analysis"].append(Job(f"analysis-{name}", ["sent", "analyze", *argv], None, log(f"analysis-{name}")))
    return jobs


def resolve_recipe(p: dict, run: str, opts: dict, root: Path, seed: int) -> dict:
    """One run's full recipe: the method's recipe file, the profile's shared overrides, then the run's own.

    A value of null removes the key. Curriculum runs make one pass over the stages (num_train_epochs 1, the
    stages already repeat ``epochs_per_stage`` times); other runs train ``max_steps`` on the shuffled SE table, so
    every run sees each prompt the same number of times.
    """
    opts = dict(opts)
    recipe_path = REPO / opts.pop("recipe", p["train_recipe"])
    recipe = yaml.safe_load(recipe_path.read_text())
    curriculum = opts.pop("curriculum", None)
    domain = opts.pop("domain", "math")
    recipe.update(p.get("train_overrides", {}))
    recipe.update({"model_name_or_path": p["model"], "root": str(root), "run": run, "seed": seed})
    if curriculum:
        recipe.update({"train_data": "curriculum", "curriculum_dir": str(root / "curriculum" / curriculum),
                       "max_steps": -1, "num_train_epochs": 1})
    else:
        recipe.update({"train_data": str(root / "se" / f"{domain}.parquet"), "curriculum_dir": None,
                       "max_steps": p["steps_without_curriculum"]})
    recipe.update(opts)
    return {k: v for k, v in recipe.items() if v is not None}


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run_job(job: Job, dry: bool) -> tuple[Job, str, float]:
    if job.done is not None and job.done.exists():
        return job, "skipped (done)", 0.0
    if dry:
        return job, "dry-run: " + shlex.join(job.argv), 0.0
    job.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("SENT_THREADS", "1"), **job.env}
    with open(job.log, "a") as fh:
        fh.write(f"\n$ {shlex.join(job.argv)}\n")
        fh.flush()
        rc = subprocess.call(job.argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    dt = time.time() - t0
    if rc != 0:
        tail = "".join(job.log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{job.name} failed (exit {rc}); log: {job.log}\n--- last lines ---\n{tail}")
    return job, "ok", dt


def run_step(step: str, jobs: list[Job], n_jobs: int, dry: bool) -> list[tuple[str, str, float]]:
    results = []
    if not jobs:
        return results
    print(f"[run_all] step {step}: {len(jobs)} job(s), {n_jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        futures = [pool.submit(run_job, j, dry) for j in jobs]
        for i, fut in enumerate(as_completed(futures), 1):
            job, status, dt = fut.result()
            print(f"[run_all]   ({i}/{len(jobs)}) {job.name}: {status}" + (f" in {dt:.0f} s" if dt else ""), flush=True)
            results.append((job.name, status, dt))
    return results


def summarize(root: Path, profile: str, timings: dict, out_dir: Path) -> str:
    figures = sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / "figures").glob("*.png"))
    tables = sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / "tables").glob("*"))
    lines = [f"[run_all] profile {profile}: artifacts in {root}", f"[run_all] {len(figures)} figures, {len(tables)} tables in {out_dir}"]
    lines += [f"    {f}" for f in figures + tables]
    lines += ["[run_all] step times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    summary = {"profile": profile, "root": str(root), "figures": figures, "tables": tables, "step_seconds": timings}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper-1.5b | paper-7b | paper-14b")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per run (>= 3 for claims that one method beats another)")
    ap.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    ap.add_argument("--jobs", type=int, default=None, help="parallel jobs for train/eval (default: the profile's)")
    ap.add_argument("--root", default=None, help="artifact root (default artifacts/<profile>)")
    ap.add_argument("--out", default=None, help="figures/tables/notebooks folder (default reproduce/out/<profile>)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = ap.parse_args(argv)

    path = REPO / "reproduce" / "profiles" / f"{args.profile}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in (REPO / "reproduce" / "profiles").glob("*.yaml"))
        ap.error(f"unknown profile {args.profile!r}; valid: {', '.join(valid)}")
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    profile = yaml.safe_load(path.read_text())
    root = Path(args.root or REPO / "artifacts" / args.profile).resolve()
    log_dir = root / "logs"
    out_dir = Path(args.out or REPO / "reproduce" / "out" / args.profile).resolve()
    jobs = plan(profile, root, args.seeds, log_dir, out_dir)
    n_jobs = args.jobs or profile.get("jobs", 1)
    steps = args.only or list(STEPS)
    timings: dict[str, float] = {}
    for step in steps:
        if step == "summary":
            continue
        t0 = time.time()
        parallel = n_jobs if step in ("se", "train", "eval", "notebooks", "analysis", "curriculum") else 1
        run_step(step, jobs[step], parallel, args.dry_run)
        timings[step] = time.time() - t0
    if "summary" in steps and not args.dry_run:
        print(summarize(root, args.profile, timings, out_dir), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
