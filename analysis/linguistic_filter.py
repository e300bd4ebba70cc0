"""Who the low-entropy / high-covariance tokens are: shares of linguistic token classes per step.

SENT's KL acts on the bottom-80 % entropy tokens (reference/paper.md §1.4). Many of those are
function words and punctuation, whose certainty says nothing about reasoning. This module

* reports, per training step, the share of each class (``function``, ``punctuation``, ``number``,
  ``content``: :func:`sent.tokens.classify_token`) among all tokens, the low-entropy set and the
  high-covariance set (:func:`class_shares`);
* compares a SENT run with a ``token_filter=content`` run (entropy curves, Pass@k) in
  :func:`compare_runs`; that run's trainer drops non-content tokens from the low-entropy set with
  ``sent.tokens:content_mask``.

The word lists, the classes and their caveats live in :mod:`sent.tokens` (other languages:
``sent.tokens.register_language``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sent.artifacts import save_figure
from sent.tokens import CATEGORIES, classify_token


def token_sets(df: pd.DataFrame, *, low_entropy_ratio: float = 0.8, top_k_ratio: float = 0.0002) -> pd.DataFrame:
    """Token-level table ``step, token, entropy, low_entropy, high_cov`` from validated rollouts.

    Uses the recorded ``low_entropy`` / ``high_cov`` columns when present (the trainer's own micro-batch
    selection); otherwise recomputes them per step over the whole step (bottom ``low_entropy_ratio`` by
    entropy; Cov_t centred over that set; top ``max(1, int(top_k_ratio * |T_low|))`` by Cov_t).
    """
    lens = df["tokens"].map(len).to_numpy()
    tok = pd.DataFrame(
        {
            "step": np.repeat(df["step"].to_numpy(), lens),
            "token": np.concatenate([np.asarray(t, dtype=object) for t in df["tokens"]]) if lens.sum() else [],
            "entropy": np.concatenate([np.asarray(e, dtype=np.float64) for e in df["entropy"]]) if lens.sum() else [],
        }
    )
    if "low_entropy" in df.columns and "high_cov" in df.columns:
        tok["low_entropy"] = np.concatenate([np.asarray(m, dtype=bool) for m in df["low_entropy"]])
        tok["high_cov"] = np.concatenate([np.asarray(m, dtype=bool) for m in df["high_cov"]])
        tok.attrs["sets"] = "recorded"
        return tok
    logp = np.concatenate([np.asarray(x, dtype=np.float64) for x in df["logp"]])
    adv = np.repeat(df["advantage"].to_numpy(np.float64), lens)
    low = np.zeros(len(tok), dtype=bool)
    high = np.zeros(len(tok), dtype=bool)
    for step in np.unique(tok["step"]):
        idx = np.flatnonzero(tok["step"].to_numpy() == step)
        order = idx[np.argsort(tok["entropy"].to_numpy()[idx], kind="stable")]
        lo_idx = order[: max(1, int(low_entropy_ratio * len(idx)))]
        cov = (adv[lo_idx] - adv[lo_idx].mean()) * (logp[lo_idx] - logp[lo_idx].mean())
        low[lo_idx] = True
        high[lo_idx[np.argsort(-cov, kind="stable")[: max(1, int(top_k_ratio * len(lo_idx)))]]] = True
    tok["low_entropy"], tok["high_cov"] = low, high
    tok.attrs["sets"] = "recomputed"
    return tok


def class_shares(tok: pd.DataFrame, language: str = "en") -> pd.DataFrame:
    """Share of each class per step in ``all`` tokens, the ``low_entropy`` and the ``high_cov`` set.

    Returns long format ``step, set, category, share, n`` plus ``enrichment`` = share / share among all
    tokens of that step (> 1: the class is over-represented in the set). Step ``-1`` = all steps pooled.
    """
    cats = pd.Series(tok["token"].unique())
    lookup = dict(zip(cats, cats.map(lambda t: classify_token(t, language))))
    tok = tok.assign(category=tok["token"].map(lookup))
    frames = []
    pooled = tok.assign(step=-1)
    for name, mask in (("all", None), ("low_entropy", "low_entropy"), ("high_cov", "high_cov")):
        for part in (tok, pooled):
            sub = part if mask is None else part[part[mask]]
            counts = sub.groupby(["step", "category"]).size().unstack(fill_value=0).reindex(columns=list(CATEGORIES), fill_value=0)
            shares = counts.div(counts.sum(1), axis=0).stack().rename("share").reset_index()
            shares["n"] = counts.sum(1).reindex(shares["step"]).to_numpy()
            frames.append(shares.assign(set=name))
    out = pd.concat(frames, ignore_index=True)
    base = out[out["set"] == "all"].set_index(["step", "category"])["share"]
    out["enrichment"] = out["share"] / base.reindex(pd.MultiIndex.from_frame(out[["step", "category"]])).to_numpy()
    return out[["step", "set", "category", "share", "n", "enrichment"]]


def plot_shares(shares: pd.DataFrame, path_stem) -> list:
    """Stacked class shares per step for all / low-entropy / high-covariance tokens (PNG + PDF)."""
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt

    sets = ("all", "low_entropy", "high_cov")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True, layout="constrained")
    per_step = shares[shares["step"] >= 0]
    for ax, name in zip(axes, sets):
        piv = per_step[per_step["set"] == name].pivot(index="step", columns="category", values="share")
        piv = piv.reindex(columns=list(CATEGORIES)).fillna(0)
        ax.stackplot(piv.index, *[piv[c] for c in CATEGORIES], labels=CATEGORIES, alpha=0.85)
        ax.set(title=f"{name} tokens", xlabel="recorded training step", ylim=(0, 1))
    axes[0].set_ylabel("share of tokens")
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    return save_figure(fig, path_stem, tight_layout=False)  # legend outside the data (docs/FIGURES-STYLE.md)


def compare_runs(runs: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Entropy curves (metrics.jsonl) and Pass@k (eval/*.parquet) of labelled run folders.

    ``runs`` maps a label (e.g. ``"sent"``, ``"sent_content"``) to a run folder. Returns
    ``(curves: run, step, key, value)``, ``(passk: run, suite, k, pass_at_k, n_prompts)`` and a list of
    notes naming what was missing and the command that makes it.
    """
    from sent.artifacts import eval_pass_at_k, read_metrics

    curves, passk, notes = [], [], []
    keys = ("entropy/all", "entropy/low", "entropy/high_cov", "reward")
    for label, folder in runs.items():
        m = read_metrics(folder)
        if m is None:
            notes.append(f"{label}: no {folder}/metrics.jsonl (make it with `sent train --config <recipe.yaml>`)")
        else:
            for key in keys:
                if key in m.columns:
                    curves.append(pd.DataFrame({"run": label, "step": m["step"], "key": key, "value": m[key]}))
        pk = eval_pass_at_k(folder)
        if pk.empty:
            notes.append(f"{label}: no {folder}/eval/*.parquet (make it with `sent eval --run {folder}`)")
        else:
            passk.append(pk.assign(run=label))
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["run", "step", "key", "value"])
    passk_df = (pd.concat(passk, ignore_index=True) if passk
                else pd.DataFrame(columns=["suite", "k", "pass_at_k", "n_prompts", "run"]))
    return curves_df, passk_df, notes


def plot_compare(curves: pd.DataFrame, passk: pd.DataFrame, path_stem) -> list:
    """Entropy curves of the compared runs and their Pass@k per suite (PNG + PDF)."""
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    for (run, key), g in curves[curves["key"].str.startswith("entropy")].groupby(["run", "key"]):
        axes[0].plot(g["step"], g["value"], label=f"{run}: {key}")
    axes[0].set(xlabel="optimizer step", ylabel="token entropy (nats)", title="entropy during training")
    for run, g in passk.groupby("run"):
        for suite, gs in g.groupby("suite"):
            axes[1].plot(gs["k"], gs["pass_at_k"], marker="o", label=f"{run}: {suite}")
    axes[1].set(xlabel="k", ylabel="Pass@k", xscale="log", title="Pass@k")
    for ax in axes:  # legends under the panels, outside the data (docs/FIGURES-STYLE.md)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no artifact", ha="center", transform=ax.transAxes, gid="note")
    return save_figure(fig, path_stem, tight_layout=False)
