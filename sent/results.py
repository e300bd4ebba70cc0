"""What a run supports: suite-averaged scores with intervals, paired differences, and the sentences allowed about them.

``sent.stats`` holds the estimators; this module applies them to a profile's evaluation and writes
``<out>/tables/results.{md,json}`` (``reproduce/run_all.sh`` does it in its summary step). Every comparison it
states carries its 95% interval and says whether the interval excludes 0 ("resolved") or not; a statement about a
single seed is labelled as such. The README's result paragraph is copied from ``results.md``, never typed.

Comparisons made:

* every run vs GRPO (the paper's baseline column), paired on problems;
* w/ SENT (``sent_release``) and SENT (formula) vs each baseline method;
* the curriculum controls (``abl_curriculum_only`` vs ``ctl_curr_reverse`` / ``ctl_curr_random``), which separate
  the order of the SE stages from their content;
* the seed-to-seed spread of every run with more than one seed, so the size of the method differences can be read
  against it, and the smallest difference the evaluation can resolve (the median half-width of the paired
  intervals).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sent import stats as S


BASELINE = "grpo"
SENT_RUNS = ("sent_release", "sent")
BASELINE_METHODS = ("grpo", "entropy_bonus", "entropy_adv", "clip_cov", "kl_cov", "high_entropy",
                    "abl_curriculum_only")
CONTROLS = (("abl_curriculum_only", "ctl_curr_reverse"), ("abl_curriculum_only", "ctl_curr_random"),
            ("ctl_curr_reverse", "grpo"), ("ctl_curr_random", "grpo"))
METRICS = ("pass@k", "avg@k")


def compute(eval_df: pd.DataFrame, ks: Sequence[int] = (8, 16, 32), n_boot: int = S.N_BOOT) -> dict:
    """Scores, intervals and comparisons for both metrics: ``{metric: {"estimates", "differences"}, "spread"}``."""
    from sent.report import order_runs

    out: dict = {"ks": list(ks), "n_boot": n_boot, "confidence": S.CONFIDENCE}
    for metric in METRICS:
        scores = S.problem_scores(eval_df, ks, metric)
        runs = order_runs(scores.run.unique())
        est = S.estimates_table(scores, runs, n_boot=n_boot)
        pairs = [(r, BASELINE) for r in runs if r != BASELINE]
        pairs += [(s, b) for s in SENT_RUNS for b in BASELINE_METHODS if b != BASELINE]
        pairs += list(CONTROLS)
        suites = scores.groupby("run")["suite"].agg(set).to_dict()
        rows = [S.compare(scores, run, base, n_boot=n_boot) for run, base in dict.fromkeys(pairs)
                # skip runs not made, or evaluated on other suites (a cross-domain run vs a math one)
                if run in runs and base in runs and suites[run] & suites[base]]
        out[metric] = {"estimates": est, "differences": pd.DataFrame(rows, columns=S.COMPARISON_COLUMNS)}
        if metric == "pass@k":
            out["spread"] = {r: S.seed_spread(scores, r) for r in runs}
    return out


def _label(run: str) -> str:
    from sent.report import method_label

    label = method_label(run)
    return label if label == run else f"{label} (`{run}`)"


def _verdict(row) -> str:
    if not row["resolved"]:
        return "not resolved"
    return "resolved: higher" if row["diff"] > 0 else "resolved: lower"


def _fmt(mean: float, lo: float, hi: float, signed: bool = False) -> str:
    return S.Estimate(mean, lo, hi, 0, 0).format(1, signed=signed)


def claims(res: dict) -> list[str]:
    """The sentences a reader may take from the run: each with its interval and verdict."""
    lines = []
    for metric in METRICS:
        name = "Pass@k" if metric == "pass@k" else "Avg@k"
        diffs = res[metric]["differences"]
        for _, row in diffs.iterrows():
            seeds = "single seed" if row["n_seeds"] == 1 else f"{int(row['n_seeds'])} seeds"
            lines.append(f"{_label(row['run'])} − {_label(row['baseline'])}: {name} "
                         f"{_fmt(row['diff'], row['lo'], row['hi'], signed=True)} points, "
                         f"P(improvement) {row['poi']:.2f} ({seeds}, {int(row['n_problems'])} problems): "
                         f"{_verdict(row)}.")
    return lines


def resolution(res: dict, metric: str = "pass@k") -> float:
    """Median half-width of the paired-difference intervals vs GRPO: differences smaller than this are not resolved
    by the evaluation as sized (NaN when there is no comparison)."""
    d = res[metric]["differences"]
    d = d[d.baseline == BASELINE]
    return float(np.median((d.hi - d.lo) / 2)) if len(d) else float("nan")


def markdown(res: dict, profile: str) -> str:
    """``results.md``: the interval table, the comparisons vs GRPO, the controls and the spread, in words."""
    conf = int(100 * res["confidence"])
    ks = ", ".join(map(str, res["ks"]))
    pk, ak = res["pass@k"]["estimates"], res["avg@k"]["estimates"]
    pk, ak = pk[pk.suite == "Avg."].set_index("run"), ak[ak.suite == "Avg."].set_index("run")
    dk = res["pass@k"]["differences"]
    vs = dk[dk.baseline == BASELINE].set_index("run")
    n_seeds = int(pk.n_seeds.max()) if len(pk) else 0
    lines = [f"# Results of profile `{profile}`", "",
             f"Suite-averaged Pass@k and Avg@k (%, mean over k = {ks}), mean over seeds with a {conf}% stratified "
             f"bootstrap interval over problems and seeds ({res['n_boot']} replicates; `sent.stats`). "
             f"Δ vs GRPO: paired on problems; **bold** where the interval excludes 0. "
             + ("**Single seed: the intervals cover problem sampling only.**" if n_seeds <= 1 else ""), "",
             f"| run | seeds | Pass@k [{conf}% CI] | Δ Pass@k vs GRPO | P(> GRPO) | Avg@k [{conf}% CI] |",
             "|---|---|---|---|---|---|"]
    from sent.report import NOT_RUN, NOT_RUN_NOTE, TABLE_ORDER, method_label, order_runs

    # every paper column keeps its row: a method without evaluation says so (w/ Mask: unidentified in the paper)
    for run in order_runs([*pk.index, *(m for m in TABLE_ORDER if m not in pk.index)]):
        if run not in pk.index:
            why = NOT_RUN_NOTE if run == "mask" else NOT_RUN
            lines.append(f"| {method_label(run)} | 0 | {why} | — | — | {why} |")
            continue
        p, a = pk.loc[run], ak.loc[run] if run in ak.index else None
        if run in vs.index:
            r = vs.loc[run]
            delta = _fmt(r["diff"], r["lo"], r["hi"], signed=True)
            delta = f"**{delta}**" if r["resolved"] else delta
            poi = f"{r['poi']:.2f}"
        else:
            delta, poi = "—", "—"
        avg = _fmt(a["mean"], a["lo"], a["hi"]) if a is not None else "n/a"
        lines.append(f"| {_label(run)} | {int(p.n_seeds)} | {_fmt(p['mean'], p['lo'], p['hi'])} | {delta} | {poi} "
                     f"| {avg} |")
    spread = {r: v for r, v in res.get("spread", {}).items() if np.isfinite(v)}
    lines += ["", "## Seed-to-seed spread", ""]
    if spread:
        lines.append("Standard deviation over seeds of the suite-averaged Pass@k: "
                     + "; ".join(f"{_label(r)} {v:.1f}" for r, v in spread.items()) + " points.")
    else:
        lines.append("One seed per run: the seed-to-seed spread is not measured (run with `--seeds 3`).")
    h = resolution(res)
    if np.isfinite(h):
        lines += ["", f"Resolution: the median half-width of the paired {conf}% intervals vs GRPO is ±{h:.1f} Pass@k "
                      "points; smaller differences are not resolved by this evaluation."]
    lines += ["", "## Every comparison", ""] + [f"- {c}" for c in claims(res)]
    return "\n".join(lines) + "\n"


def training_end(metrics: pd.DataFrame, last: int = 20) -> pd.DataFrame:
    """Per run: token entropy, training reward and completion length over each seed's last ``last`` optimizer
    updates, then mean and standard deviation over seeds (columns ``<name>``, ``<name>_sd``, ``n_seeds``).

    Curriculum runs end on their last stage's prompts, so their numbers describe those prompts, not the whole set.
    Reward is logged on generation steps only (None on the others) and is averaged over the steps that log it.
    """
    cols = {"entropy": "entropy/all", "reward": "reward", "length": "completions/mean_length"}
    rows = []
    for (run, seed), g in metrics.groupby(["run", "seed"]):
        tail = g[g.step > g.step.max() - last]
        rows.append({"run": run, "seed": seed, "steps": int(g.step.max()),
                     **{k: float(pd.to_numeric(tail[c], errors="coerce").dropna().mean()) if c in tail else np.nan
                        for k, c in cols.items()}})
    per_seed = pd.DataFrame(rows)
    if per_seed.empty:
        return per_seed
    agg = per_seed.groupby("run").agg(**{k: (k, "mean") for k in cols}, **{f"{k}_sd": (k, "std") for k in cols},
                                       n_seeds=("seed", "count"), steps=("steps", "max"))
    from sent.report import order_runs

    return agg.reindex(order_runs(agg.index)).reset_index()


def training_markdown(end: pd.DataFrame, last: int = 20) -> str:
    """The end-of-training table for ``results.md``."""
    lines = ["", f"## End of training (mean over each seed's last {last} updates; ± s.d. over seeds)", "",
             "| run | seeds | token entropy (nats) | training reward | completion length (tokens) |", "|---|---|---|---|---|"]
    for r in end.itertuples():
        def cell(m, sd, d=3):
            return "n/a" if not np.isfinite(m) else (f"{m:.{d}f} ± {sd:.{d}f}" if np.isfinite(sd) else f"{m:.{d}f}")
        lines.append(f"| {_label(r.run)} | {int(r.n_seeds)} | {cell(r.entropy, r.entropy_sd)} | "
                     f"{cell(r.reward, r.reward_sd)} | {cell(r.length, r.length_sd, 1)} |")
    lines += ["", "Curriculum runs end on their last stage's prompts (for `ctl_curr_reverse`, the lowest-SE ones), so "
              "their end-of-training numbers describe other prompts than the no-curriculum runs'."]
    return "\n".join(lines) + "\n"


def _jsonable(res: dict) -> dict:
    out = {k: v for k, v in res.items() if k not in METRICS}
    for metric in METRICS:
        out[metric] = {k: json.loads(v.to_json(orient="records")) for k, v in res[metric].items()}
    return out


def write(eval_df: pd.DataFrame, out_dir: str | os.PathLike, profile: str, ks: Sequence[int] | None = None,
          n_boot: int = S.N_BOOT, metrics: pd.DataFrame | None = None) -> Path:
    """Compute and write ``<out_dir>/tables/results.md`` and ``results.json``; returns the markdown path.

    ``ks`` defaults to the paper's 8, 16, 32, keeping those the evaluation has enough samples for."""
    from sent.io import atomic_write_json, atomic_write_text

    if ks is None:
        n = int(eval_df.groupby(["run", "seed", "suite", "prompt_id"]).size().min())
        ks = [k for k in (8, 16, 32) if k <= n] or [n]
    res = compute(eval_df, ks, n_boot)
    tables = Path(out_dir) / "tables"
    text = markdown(res, profile)
    if metrics is not None and len(metrics):
        end = training_end(metrics)
        res["training_end"] = end
        text += training_markdown(end)
    out = _jsonable({k: v for k, v in res.items() if k != "training_end"})
    if "training_end" in res:
        out["training_end"] = json.loads(res["training_end"].to_json(orient="records"))
    atomic_write_json(tables / "results.json", out)
    path = tables / "results.md"
    atomic_write_text(path, text)
    return path
