"""Run the whole reproduction for one profile: base model -> SE -> curriculum -> train -> eval ->
notebooks -> analyses -> summary. Called by reproduce/run_all.sh; every step is a `sent` command or a
papermill notebook, and each one skips finished work, so rerunning after a kill resumes.

The plan of a profile lives in reproduce/profiles/<profile>.yaml (budget, runs, ablations, sizes) and is resolved by
sent.plans: `--dry-run` writes reproduce/out/<profile>/plan.md and runs nothing. Curriculum runs train each stage as
its own process (stage k from stage k-1's final weights, which are also its reference; fresh optimizer).
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
    # Commands run first, in order, each skipped when its own marker exists (curriculum stages before the last).
    before: list[tuple[list[str], Path]] = field(default_factory=list)


def _flags(options: dict) -> list[str]:
    out: list[str] = []
    for key, val in options.items():
        if isinstance(val, (list, tuple)):  # a list = a multi-value flag: --levels 1 2
            out += [f"--{key}", *map(str, val)]
        else:
            out += [f"--{key}"] if val == "" else [f"--{key}", str(val)]  # "" = a bare switch
    return out


def plan(profile: dict, root: Path, seeds: int | None, log_dir: Path, out_dir: Path, *, dry: bool = False,
         num_processes: int | None = None, accelerate_config: str | None = None) -> dict[str, list[Job]]:
    """Expand a profile into jobs per step. Writes the resolved recipes under ``<root>/recipes`` unless ``dry``."""
    from sent.artifacts import RootPaths, RunPaths, done_file, eval_summary_file, manifest_file
    from sent.plans import expand, launch_argv, make_launch, resolve_run, run_seeds

    p = expand(profile, root)
    paths = RootPaths(root)
    jobs: dict[str, list[Job]] = {s: [] for s in STEPS}
    launch, n_proc, _ = make_launch(p, num_processes, accelerate_config)

    def log(name: str) -> Path:
        return log_dir / f"{name}.log"

    if p.get("base"):  # paper profiles start from a hub model: no base step
        jobs["base"] = [Job("base", ["sent", *p["base"]["argv"]], root / p["base"]["done"], log("base"))]
    for domain, opts in p["semantic_entropy"].items():
        argv = ["sent", "semantic-entropy", "--model", p["model"], "--root", str(root), "--domain", domain, *_flags(opts)]
        jobs["se"].append(Job(f"se-{domain}", argv, paths.se(domain), log(f"se-{domain}")))
    for name, opts in p["curricula"].items():
        out = paths.curriculum(name)
        argv = ["sent", "curriculum", "--se", str(paths.se(opts["domain"])), "--out", str(out),
                "--n-stages", str(opts["n_stages"]), "--method", opts.get("method", "equal"),
                "--order", opts.get("order", "se"), "--seed", "0"]
        jobs["curriculum"].append(Job(f"curriculum-{name}", argv, manifest_file(out), log(f"curriculum-{name}")))
    runs = p["runs"]
    n_seeds = {run: run_seeds(p, run, seeds) for run in runs}  # --seeds N for all, else each run's own
    for seed in range(max(n_seeds.values())):
        for run, opts in runs.items():
            if seed >= n_seeds[run]:
                continue
            opts = opts or {}
            recipe = resolve_run(p, run, opts, root, seed, n_proc)
            rp = RunPaths(root, run, seed)
            if not dry:
                write_if_changed(rp.recipe, yaml.safe_dump(recipe, sort_keys=True))
            argv = launch_argv(launch, n_proc, str(rp.recipe))
            job = Job(f"train-{run}-s{seed}", argv, rp.done, log(f"train-{run}-s{seed}"))
            if opts.get("curriculum"):  # each stage is its own process: fresh optimizer, pi_ref = previous stage
                n_stages = int(p["curricula"][opts["curriculum"]]["n_stages"])
                job.before = [([*argv, "--curriculum_stage", str(k)], done_file(rp.stage_dir(k)))
                              for k in range(1, n_stages)]
                job.argv = [*argv, "--curriculum_stage", str(n_stages)]
            jobs["train"].append(job)
    ev = p["eval"]
    eval_targets = [("base", p["model"], paths.base_eval, "math")]
    for seed in range(max(n_seeds.values())):
        for run, opts in runs.items():
            if seed >= n_seeds[run]:
                continue
            rp = RunPaths(root, run, seed)
            eval_targets.append((f"{run}-s{seed}", str(rp.final), rp.eval_dir, (opts or {}).get("domain", "math")))
    for name, model, out, domain in eval_targets:
        suites = ev["suites_by_domain"].get(domain, ev["suites"])
        argv = ["sent", "eval", "--model", model, "--out", str(out), "--suites", ",".join(suites), *_flags(ev["options"])]
        jobs["eval"].append(Job(f"eval-{name}", argv, eval_summary_file(out), log(f"eval-{name}")))
    if not dry:
        (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb in p["notebooks"]:
        nb_out = out_dir / "notebooks" / nb
        argv = [sys.executable, "-m", "papermill", str(REPO / "notebooks" / nb), str(nb_out), "--kernel", "python3",
                "-p", "root", str(root), "-p", "profile", p["profile"], "-p", "out_dir", str(out_dir), "--cwd", str(REPO)]
        jobs["notebooks"].append(Job(f"nb-{nb}", argv, None, log(f"nb-{nb}")))
    for name, argv in p.get("analysis", {}).items():
        jobs["analysis"].append(Job(f"analysis-{name}", ["sent", "analyze", *argv], None, log(f"analysis-{name}")))
    return jobs


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _call(job: Job, argv: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("SENT_THREADS", "1"), **job.env}
    with open(job.log, "a") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n")
        fh.flush()
        rc = subprocess.call(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if rc != 0:
        tail = "".join(job.log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{job.name} failed (exit {rc}); log: {job.log}\n--- last lines ---\n{tail}")


def run_job(job: Job, dry: bool) -> tuple[Job, str, float]:
    if job.done is not None and job.done.exists():
        return job, "skipped (done)", 0.0
    if dry:
        return job, "dry-run: " + " && ".join(shlex.join(a) for a, _ in job.before + [(job.argv, None)]), 0.0
    job.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for argv, done in job.before:
        if not done.exists():
            _call(job, argv)
    _call(job, job.argv)
    return job, "ok", time.time() - t0


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
    from sent import report, results

    results_md = None
    try:  # the result statements with their intervals (sent.results); the README copies them from here
        try:
            metrics = report.load_runs(root, profile=profile)
        except FileNotFoundError:
            metrics = None
        results_md = results.write(report.load_eval(root, profile=profile), out_dir, profile, metrics=metrics)
    except FileNotFoundError as err:
        print(f"[run_all] no results table: {err}")
    figures = sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / "figures").glob("*.png"))
    tables = sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / "tables").glob("*"))
    lines = [f"[run_all] profile {profile}: artifacts in {root}", f"[run_all] {len(figures)} figures, {len(tables)} tables in {out_dir}"]
    lines += [f"    {f}" for f in figures + tables]
    lines += ["[run_all] step times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    if results_md is not None:
        lines += [f"[run_all] results with 95% intervals: {results_md}"]
    summary = {"profile": profile, "root": str(root), "figures": figures, "tables": tables, "step_seconds": timings}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sent.plans import PlanError, check_plans, expand, load_profile, plan_markdown, plan_short, profile_plans

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper-1.5b | paper-7b | paper-14b")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds for every run (default: each run's own, from the profile: 3 for the cpu profile's "
                         "main table and curriculum controls); --seeds 1 = the quick single-seed view")
    ap.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    ap.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                    help="train and evaluate only these runs of the profile (default: all); e.g. the main table first")
    ap.add_argument("--jobs", type=int, default=None, help="parallel jobs for train/eval (default: the profile's)")
    ap.add_argument("--root", default=None, help="artifact root (default artifacts/<profile>)")
    ap.add_argument("--out", default=None, help="figures/tables/notebooks folder (default reproduce/out/<profile>)")
    ap.add_argument("--num-processes", type=int, default=None,
                    help="training processes (GPUs) per run; default: the profile's (paper profiles: the GPUs here)")
    ap.add_argument("--accelerate-config", default=None,
                    help="accelerate config file for training (multi-node: one with num_machines, machine_rank, "
                         "main_process_ip); default: the profile's")
    ap.add_argument("--dry-run", action="store_true",
                    help="write reproduce/out/<profile>/plan.md, print the plan and the commands, run nothing")
    args = ap.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        ap.error("--seeds must be >= 1")
    try:
        profile = load_profile(args.profile)
    except PlanError as err:
        ap.error(str(err))
    if args.runs:
        unknown = sorted(set(args.runs) - set(profile["runs"]))
        if unknown:
            ap.error(f"--runs {unknown} are not runs of profile {args.profile}; valid: {', '.join(profile['runs'])}")
        profile = {**profile, "runs": {r: o for r, o in profile["runs"].items() if r in args.runs}}
    root = Path(args.root or REPO / "artifacts" / args.profile).resolve()
    log_dir = root / "logs"
    out_dir = Path(args.out or REPO / "reproduce" / "out" / args.profile).resolve()
    try:
        plans, launch = profile_plans(expand(profile, root), root, args.num_processes, args.accelerate_config)
        jobs = plan(profile, root, args.seeds, log_dir, out_dir, dry=args.dry_run, num_processes=args.num_processes,
                    accelerate_config=args.accelerate_config)
    except PlanError as err:
        print(f"run_all: {err}", file=sys.stderr)
        return 2
    problems, notes = check_plans(plans)
    print(plan_short(plans, problems, notes), flush=True)
    if args.dry_run:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "plan.md").write_text(plan_markdown(args.profile, plans, launch, problems, notes))
        print(f"[plan] written to {out_dir / 'plan.md'}", flush=True)
    if problems:
        print("run_all: the plan has problems (see above); fix the profile", file=sys.stderr)
        return 2
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
