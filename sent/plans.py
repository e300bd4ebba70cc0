"""Run plans: a profile (``reproduce/profiles/<name>.yaml``) resolved into one recipe per run, with its budget.

A profile holds the budget and the runs; a method recipe (``reproduce/recipes/methods/<name>.yaml``) holds a
method's settings; the profile's training recipe (``reproduce/recipes/<profile>/train.yaml``) holds what every run of
the profile shares (model dtype, lengths, learning rate, logging). :func:`resolve_run` merges them in that order:

    train.yaml  <  methods/<recipe>.yaml  <  profile ``method_overrides[<recipe>]``  <  the run's own options
               <  the budget (forced, the same for every run)  <  paths (model, root, data, seed)

The **equal-budget rule**: every run of a profile gets the same prompts per generation batch, samples per prompt,
optimizer updates per generation batch (the authors' scripts: 2) and passes over each training prompt (per
curriculum stage, or over the whole table). A run may not set a budget field; :func:`resolve_run` refuses it.

:func:`run_plan` describes one run in numbers (generation batches, updates, dtypes, launch command, response budgets,
KL terms, stage boundaries) and :func:`plan_markdown` writes them as ``plan.md``. Nothing here trains or writes.
(About 460 lines: budget, launch, resolution and the report are one layer and change together; the release audit
map lives in :mod:`sent.plan_audit`.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sent.artifacts import RootPaths


REPO = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO / "reproduce" / "profiles"
RECIPES_DIR = REPO / "reproduce" / "recipes"

#: Recipe fields that the budget sets for every run; a run that sets one is refused.
BUDGET_FIELDS = ("num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "steps_per_generation", "num_train_epochs", "epochs_per_stage", "max_steps", "generation_batch_size",
                 "num_iterations")
#: Keys of a run entry in a profile that are not recipe fields.
RUN_KEYS = ("recipe", "curriculum", "domain", "seeds")


class PlanError(ValueError):
    """A profile that cannot be resolved into valid, equal-budget runs."""


@dataclass
class Budget:
    """The per-profile budget every run shares (profile key ``budget``)."""

    prompts_per_generation: int  # prompts per generation batch (verl data.train_batch_size)
    num_generations: int  # samples per prompt (G, verl rollout.n)
    updates_per_generation: int  # optimizer updates per generation batch (train_batch_size / ppo_mini_batch_size)
    micro_batch: int  # rows per process per forward/backward (verl ppo_micro_batch_size_per_gpu)
    epochs: int  # passes over every training prompt (per stage for curriculum runs; verl total_epochs)

    def __post_init__(self):
        for name in ("prompts_per_generation", "num_generations", "updates_per_generation", "micro_batch", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PlanError(f"budget.{name}={value!r} must be an integer >= 1")
        rows = self.prompts_per_generation * self.num_generations
        if rows % self.updates_per_generation:
            raise PlanError(f"budget: {rows} rows per generation batch do not split into "
                            f"{self.updates_per_generation} equal updates")

    def recipe_fields(self, num_processes: int) -> dict:
        """The trainer fields that realise this budget on ``num_processes`` processes."""
        rows_per_update = self.prompts_per_generation * self.num_generations // self.updates_per_generation
        per_step = num_processes * self.micro_batch
        if rows_per_update % per_step:
            raise PlanError(f"{rows_per_update} rows per optimizer update cannot be split into micro-batches of "
                            f"{self.micro_batch} on {num_processes} process(es); change --num-processes or "
                            "budget.micro_batch")
        accum = rows_per_update // per_step
        return {"num_generations": self.num_generations, "per_device_train_batch_size": self.micro_batch,
                "gradient_accumulation_steps": accum, "steps_per_generation": accum * self.updates_per_generation,
                "num_iterations": 1, "max_steps": -1, "num_train_epochs": self.epochs,
                "epochs_per_stage": self.epochs}


@dataclass
class Launch:
    """How a training process group is started (profile key ``launch``)."""

    accelerate_config: str | None = None  # None: a plain `sent train` process
    num_processes: int | str = 1  # an int, or "auto" (the GPUs of this machine)
    assumed_processes: int = 1  # used for "auto" when this machine has no GPU (dry runs on a laptop)
    note: str = ""

    def processes(self, override: int | None = None) -> tuple[int, str]:
        """(process count, where it came from)."""
        if override is not None:
            if override < 1:
                raise PlanError(f"--num-processes {override} must be >= 1")
            return override, "--num-processes"
        if self.num_processes != "auto":
            return int(self.num_processes), "profile"
        gpus = _gpu_count()
        if gpus:
            return gpus, "GPUs found on this machine"
        return self.assumed_processes, "assumed (no GPU on this machine; pass --num-processes)"


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch / no driver: no GPU
        return 0


def load_profile(name_or_path: str | os.PathLike) -> dict:
    """A profile by name (``reproduce/profiles/<name>.yaml``) or path; a clear error for an unknown name."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise PlanError(f"unknown profile {str(name_or_path)!r}; valid: {', '.join(valid)}")
    profile = yaml.safe_load(path.read_text())
    for key in ("profile", "model", "budget", "train_recipe", "runs"):
        if key not in profile:
            raise PlanError(f"profile {path} has no {key!r}")
    return profile


def _fmt(value, ctx: dict):
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, list):
        return [_fmt(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _fmt(v, ctx) for k, v in value.items()}
    return value


def expand(profile: dict, root: Path) -> dict:
    """The profile with ``{root}``, ``{profile}`` and ``{repo}`` filled in."""
    return _fmt(profile, {"root": str(root), "profile": profile["profile"], "repo": str(REPO)})


def _read_recipe(path: str | Path) -> dict:
    path = Path(path)
    path = path if path.is_absolute() else REPO / path
    if not path.exists():
        raise PlanError(f"recipe {path} does not exist")
    return yaml.safe_load(path.read_text()) or {}


def run_seeds(p: dict, run: str, override: int | None = None) -> int:
    """How many seeds ``run`` trains: ``override`` (``run_all.sh --seeds N``) for every run, else the run's own
    ``seeds``, else the profile's ``seeds`` (default 1). Claims about a run need >= 3 (docs/STATISTICS.md)."""
    if override is not None:
        n = override
    else:
        n = (p["runs"][run] or {}).get("seeds", p.get("seeds", 1))
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PlanError(f"run {run!r}: seeds must be an int >= 1, got {n!r}")
    return n


def method_recipe_path(name: str) -> Path:
    return RECIPES_DIR / "methods" / f"{name}.yaml"


def resolve_run(p: dict, run: str, opts: dict, root: Path, seed: int, num_processes: int) -> dict:
    """One run's full recipe (see the module docstring for the merge order). ``p`` is an expanded profile."""
    opts = dict(opts)
    opts.pop("seeds", None)  # how many seeds run (run_seeds), not a recipe field
    recipe_name = opts.pop("recipe", run)
    curriculum = opts.pop("curriculum", None)
    domain = opts.pop("domain", p.get("default_domain", "math"))
    forbidden = sorted(set(opts) & set(BUDGET_FIELDS))
    if forbidden:
        raise PlanError(f"run {run!r} sets budget field(s) {forbidden}: every run of a profile shares the budget "
                        "(profile key `budget`)")
    recipe = _read_recipe(p["train_recipe"])
    method_path = method_recipe_path(recipe_name)
    if not method_path.exists():
        valid = sorted(q.stem for q in method_path.parent.glob("*.yaml"))
        raise PlanError(f"run {run!r}: no method recipe {recipe_name!r}; valid: {', '.join(valid)}")
    recipe.update(_read_recipe(method_path))
    recipe.update(p.get("method_overrides", {}).get(recipe_name, {}))
    recipe.update(opts)
    recipe.update(Budget(**p["budget"]).recipe_fields(num_processes))
    recipe.update({"model_name_or_path": p["model"], "root": str(root), "run": run, "seed": seed})
    paths = RootPaths(root)
    if curriculum:
        recipe.update({"train_data": "curriculum", "curriculum_dir": str(paths.curriculum(curriculum))})
    else:
        recipe.update({"train_data": p.get("train_data", {}).get(domain, str(paths.se(domain))),
                       "curriculum_dir": None})
    return {k: v for k, v in recipe.items() if v is not None}


# ----------------------------------------------------------------------------------------------------- the plan
@dataclass
class RunPlan:
    """What one run does, in numbers (one row of plan.md)."""

    run: str
    method: str
    curriculum: str | None
    domain: str
    train_prompts: int | None
    prompts_source: str
    stage_sizes: list[int]
    generation_batches: int | None
    optimizer_updates: int | None
    updates_per_generation: int
    epochs_per_prompt: int
    samples_per_prompt: int
    prompts_per_generation: int
    prompts_per_update: float
    micro_batch: int
    gradient_accumulation_steps: int
    num_processes: int
    processes_from: str
    master_dtype: str
    compute_dtype: str
    launch: str
    se_max_new_tokens: int | None
    train_max_new_tokens: int
    eval_max_new_tokens: int | None
    kl_terms: str
    stage_boundary: str
    prompt_template: str
    reward_rule: str
    rollout_engine: str
    vllm_is_correction: bool | None
    learning_rate: float
    lr_scheduler: str
    recipe: dict = field(repr=False, default_factory=dict)


def _stage_sizes(p: dict, root: Path, curriculum: str | None, domain: str) -> tuple[int | None, list[int], str]:
    """(training prompts, stage sizes, where the numbers come from): the SE table / manifest when they exist, else
    the profile's SE prompt count (``n-prompts``) or its declared ``train_prompts``."""
    import json

    if curriculum:
        manifest = RootPaths(root).curriculum_manifest(curriculum)
        if manifest.exists():
            sizes = [s["size"] for s in sorted(json.loads(manifest.read_text())["stages"], key=lambda s: s["index"])]
            return sum(sizes), sizes, str(manifest)
    se = RootPaths(root).se(domain)
    n, source = None, "unknown"
    if se.exists():
        import pyarrow.parquet as pq

        n, source = pq.ParquetFile(se).metadata.num_rows, str(se)
    else:
        opts = p.get("semantic_entropy", {}).get(domain, {})
        if str(opts.get("n-prompts", "all")) != "all":
            n, source = int(opts["n-prompts"]), "profile (semantic_entropy n-prompts)"
        elif p.get("train_prompts", {}).get(domain):
            n, source = int(p["train_prompts"][domain]), "profile train_prompts (dataset card; the SE table decides)"
    if n is None:
        return None, [], source
    if curriculum:
        k = int(p["curricula"][curriculum]["n_stages"])
        return n, [n // k + (i < n % k) for i in range(k)], source + ", equal split"
    return n, [n], source


def _dtypes(recipe: dict, launch: Launch) -> tuple[str, str]:
    weights = str(recipe["dtype"] or "float32")
    mixed = "bf16" if recipe["bf16"] else "fp16" if recipe["fp16"] else None
    if weights in ("bfloat16", "float16"):
        master = weights  # the optimizer updates the low-precision weights in place (no fp32 copy)
        if launch.accelerate_config and "zero" in Path(launch.accelerate_config).name:
            master = "float32 (DeepSpeed keeps an fp32 copy)"
    else:
        master = "float32"
    compute = {"bf16": "bfloat16 (autocast)", "fp16": "float16 (autocast)"}.get(mixed, weights)
    return master, compute


def _kl_terms(r: dict) -> str:
    method = r["method"]
    parts = [f"k3 to pi_ref on all tokens, beta={r['beta']}"] if r["beta"] else ["no global KL"]
    if method == "sent":
        parts.append(f"k3 to pi_ref: beta_low={r['beta_low']} on the bottom {r['low_entropy_ratio']:.0%} "
                     f"by entropy, beta_high={r['beta_high']} on their top "
                     f"{r['high_cov_ratio'] or r['high_cov_threshold']} by covariance")
    elif method == "sent_release":
        coef = r["release_kl_coef"]
        parts.append(f"abs(logp - old_logp) x {coef * r['release_high_coef']:g} on the top / "
                     f"x {coef * r['release_low_coef']:g} on the bottom {r['release_kl_cov_ratio']}"
                     " of the low-entropy tokens by covariance (released rule)")
    elif method == "kl_cov":
        parts.append(f"abs(logp - old_logp) x {r['kl_cov_coef']} on the top {r['kl_cov_ratio']} "
                     "by covariance")
    elif method == "entropy_bonus":
        parts.append(f"entropy bonus {r['entropy_coef']}")
    return "; ".join(parts)


def effective_values(recipe: dict) -> dict:
    """Every value the run will use: the recipe parsed exactly as ``sent train`` parses it (TrlParser into the
    script arguments, ``SENTConfig`` and ``ModelConfig``), so defaults come from their one declaration."""
    from dataclasses import asdict

    from sent.trainer_config import train_parser

    # use_cpu only lets a GPU recipe's bf16 validate on this machine; it changes no value read below
    script, config, model = train_parser().parse_dict({**recipe, "use_cpu": True})
    return {**config.to_dict(), **asdict(model), **asdict(script)}


def run_plan(p: dict, run: str, opts: dict, root: Path, num_processes: int, processes_from: str,
             launch: Launch) -> RunPlan:
    """The plan of ``run`` (seed 0; seeds share it). ``p`` is an expanded profile."""
    recipe = effective_values(resolve_run(p, run, opts, root, 0, num_processes))
    budget = Budget(**p["budget"])
    curriculum = opts.get("curriculum")
    domain = opts.get("domain", p.get("default_domain", "math"))
    n, sizes, source = _stage_sizes(p, root, curriculum, domain)
    per_stage_batches = [s // budget.prompts_per_generation for s in sizes]
    gen_batches = sum(per_stage_batches) * budget.epochs if sizes else None
    se_opts = p.get("semantic_entropy", {}).get(domain, {})
    master, compute = _dtypes(recipe, launch)
    n_stages = len(sizes) if curriculum else 1
    if curriculum:
        boundary = (f"{n_stages} stages, each its own run: stage k starts from stage k-1's final weights, pi_ref = "
                    "stage k-1's final model, fresh optimizer and LR schedule")
    else:
        boundary = "no curriculum: one run over the shuffled table"
    use_vllm = bool(recipe["use_vllm"])
    return RunPlan(
        run=run, method=recipe["method"], curriculum=curriculum, domain=domain, train_prompts=n,
        prompts_source=source, stage_sizes=sizes, generation_batches=gen_batches,
        optimizer_updates=None if gen_batches is None else gen_batches * budget.updates_per_generation,
        updates_per_generation=budget.updates_per_generation, epochs_per_prompt=budget.epochs,
        samples_per_prompt=budget.num_generations, prompts_per_generation=budget.prompts_per_generation,
        prompts_per_update=budget.prompts_per_generation / budget.updates_per_generation,
        micro_batch=budget.micro_batch, gradient_accumulation_steps=recipe["gradient_accumulation_steps"],
        num_processes=num_processes, processes_from=processes_from, master_dtype=master, compute_dtype=compute,
        launch=launch_prefix(launch, num_processes, "<recipe>"), se_max_new_tokens=se_opts.get("max-new-tokens"),
        train_max_new_tokens=int(recipe["max_completion_length"]),
        eval_max_new_tokens=p.get("eval", {}).get("options", {}).get("max-new-tokens"), kl_terms=_kl_terms(recipe),
        stage_boundary=boundary, prompt_template=str(recipe["prompt_template"]),
        reward_rule=str(recipe["reward_rule"]),
        rollout_engine=f"vLLM ({recipe['vllm_mode']})" if use_vllm else "HF generate",
        vllm_is_correction=bool(recipe["vllm_importance_sampling_correction"]) if use_vllm else None,
        learning_rate=float(recipe["learning_rate"]), lr_scheduler=str(recipe["lr_scheduler_type"]),
        recipe=recipe)


def launch_prefix(launch: Launch, num_processes: int, recipe_path: str) -> str:
    """The shell command that trains one run (or one stage) from ``recipe_path``."""
    return " ".join(launch_argv(launch, num_processes, recipe_path))


def launch_argv(launch: Launch, num_processes: int, recipe_path: str) -> list[str]:
    if launch.accelerate_config is None:
        if num_processes != 1:
            raise PlanError(f"{num_processes} processes need an accelerate config (profile launch.accelerate_config "
                            "or --accelerate-config)")
        return ["sent", "train", "--config", recipe_path]
    return ["accelerate", "launch", "--config_file", launch.accelerate_config, "--num_processes", str(num_processes),
            "-m", "sent.cli", "train", "--config", recipe_path]


def make_launch(p: dict, num_processes: int | None = None,
                accelerate_config: str | None = None) -> tuple[Launch, int, str]:
    """The profile's launch with the command-line overrides, its process count and where that count comes from."""
    launch = Launch(**p.get("launch", {}))
    if accelerate_config is not None:
        launch.accelerate_config = accelerate_config
    n, source = launch.processes(num_processes)
    return launch, n, source


def profile_plans(p: dict, root: Path, num_processes: int | None = None,
                  accelerate_config: str | None = None) -> tuple[list[RunPlan], Launch]:
    """Plans of every run of an expanded profile."""
    launch, n, source = make_launch(p, num_processes, accelerate_config)
    plans = [run_plan(p, run, opts or {}, root, n, source, launch) for run, opts in p["runs"].items()]
    return plans, launch


def check_plans(plans: list[RunPlan]) -> tuple[list[str], list[str]]:
    """(problems, notes). A problem makes a comparison unequal or a plan unfaithful; a note is a difference that
    only comes from dropping each stage's last partial generation batch (verl's drop_last, as the authors' stage
    runs do), so at most one batch per (stage, epoch)."""
    problems, notes = [], []
    by_domain: dict[str, list[RunPlan]] = {}
    for rp in plans:
        by_domain.setdefault(rp.domain, []).append(rp)
        if rp.se_max_new_tokens is not None and rp.se_max_new_tokens < rp.train_max_new_tokens:
            problems.append(f"{rp.run}: SE samples {rp.se_max_new_tokens} new tokens, fewer than training's "
                            f"{rp.train_max_new_tokens} (truncated answers would sort the curriculum)")
    for domain, group in by_domain.items():
        for key in ("updates_per_generation", "epochs_per_prompt", "samples_per_prompt", "prompts_per_generation",
                    "train_prompts"):
            values = {rp.run: getattr(rp, key) for rp in group}
            if len(set(values.values())) > 1:
                problems.append(f"domain {domain}: unequal {key}: {values}")
        values = {rp.run: rp.generation_batches for rp in group}
        if len(set(values.values())) <= 1 or None in values.values():
            continue
        within = all(rp.train_prompts * rp.epochs_per_prompt / rp.prompts_per_generation - rp.generation_batches
                     < len(rp.stage_sizes) * rp.epochs_per_prompt for rp in group)
        (notes if within else problems).append(
            f"domain {domain}: generation batches differ {values}"
            + (" only by each stage's dropped last partial batch (as in the authors' stage runs)" if within else ""))
    return problems, notes


def _fmt_int(n) -> str:
    return "?" if n is None else f"{n:,}"


def plan_markdown(profile: str, plans: list[RunPlan], launch: Launch, problems: list[str],
                  notes: list[str] = ()) -> str:
    """plan.md: one table of budgets, one of precision/launch/lengths, one of objectives, then the checks."""
    first = plans[0]
    lines = [f"# Plan of profile `{profile}`", "",
             f"Written by `bash reproduce/run_all.sh --profile {profile} --dry-run`. Every seed of a run has the same "
             "plan. Numbers of prompts come from the SE table / curriculum manifest when they exist, else from the "
             f"profile ({first.prompts_source}).", "",
             "## Budget (the equal-budget rule: one row per run)", "",
             "| run | method | curriculum | training prompts | stage sizes | epochs per prompt | generation batches | "
             "optimizer updates | updates per generation batch | prompts per generation batch | samples per prompt |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rp in plans:
        lines.append(f"| {rp.run} | {rp.method} | {rp.curriculum or '-'} | {_fmt_int(rp.train_prompts)} | "
                     f"{' / '.join(_fmt_int(s) for s in rp.stage_sizes) or '?'} | {rp.epochs_per_prompt} | "
                     f"{_fmt_int(rp.generation_batches)} | {_fmt_int(rp.optimizer_updates)} | "
                     f"{rp.updates_per_generation} | {rp.prompts_per_generation} | {rp.samples_per_prompt} |")
    lines += ["", "## Precision, launch, lengths", "",
              f"- processes: {first.num_processes} ({first.processes_from}); micro-batch {first.micro_batch} rows per "
              f"process, gradient accumulation {first.gradient_accumulation_steps} -> "
              f"{first.prompts_per_update:g} prompts per optimizer update",
              f"- launch (each run; curriculum runs once per stage with `--curriculum_stage k`): `{first.launch}`"
              + (f" — {launch.note}" if launch.note else ""),
              f"- master weights: {first.master_dtype}; compute: {first.compute_dtype}",
              f"- response budget (new tokens): SE {first.se_max_new_tokens or 'model default'}, training "
              f"{first.train_max_new_tokens}, evaluation {first.eval_max_new_tokens or 'model default'}",
              f"- rollouts: {first.rollout_engine}"
              + ("" if first.vllm_is_correction is None else
                 f"; TRL's vLLM importance-sampling correction {'ON' if first.vllm_is_correction else 'off'}"),
              f"- prompt template: {first.prompt_template}; reward rule: {first.reward_rule}",
              f"- learning rate {first.learning_rate:g} ({first.lr_scheduler})", "",
              "## Objectives and stage boundaries", "", "| run | KL terms and coefficients | stage boundary |",
              "|---|---|---|"]
    for rp in plans:
        lines.append(f"| {rp.run} | {rp.kl_terms} | {rp.stage_boundary} |")
    lines += ["", "## Checks", ""]
    lines += [f"- PROBLEM: {p}" for p in problems] or ["- equal budgets within each domain; SE response budget >= "
                                                       "training's: OK"]
    lines += [f"- note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plan_short(plans: list[RunPlan], problems: list[str], notes: list[str] = ()) -> str:
    """A few lines for the terminal."""
    rp = plans[0]
    out = [f"[plan] {len(plans)} runs; {rp.num_processes} process(es) ({rp.processes_from}); "
           f"master {rp.master_dtype}, compute {rp.compute_dtype}",
           f"[plan] per run: {_fmt_int(rp.train_prompts)} prompts x {rp.epochs_per_prompt} epochs, "
           f"{_fmt_int(rp.generation_batches)} generation batches x {rp.updates_per_generation} updates = "
           f"{_fmt_int(rp.optimizer_updates)} optimizer updates; responses SE {rp.se_max_new_tokens or 'default'} / "
           f"train {rp.train_max_new_tokens} / eval {rp.eval_max_new_tokens or 'default'} tokens"]
    out += [f"[plan] PROBLEM: {p}" for p in problems]
    out += [f"[plan] note: {n}" for n in notes]
    return "\n".join(out)


__all__ = ["BUDGET_FIELDS", "Budget", "Launch", "PlanError", "RunPlan", "check_plans", "expand", "launch_argv",
           "load_profile", "make_launch", "plan_markdown", "plan_short", "profile_plans", "resolve_run", "run_plan"]

