"""Linguistic classes of tokens, and who the low-entropy / high-covariance tokens are.

SENT's KL acts on the bottom-80 % entropy tokens (reference/paper.md §1.4). Many of those are
function words and punctuation, whose certainty says nothing about reasoning. This module

* classifies a token as ``function`` (closed-class word), ``punctuation`` (punctuation, symbols,
  whitespace), ``number`` or ``content`` (everything else: open-class words, sub-word pieces, LaTeX
  commands, variable names);
* exposes :func:`is_content_token` for the trainer's ``token_filter="content"`` option, which imports
  ``analysis.linguistic_filter:is_content_token`` to drop non-content tokens from the low-entropy set;
* reports, per training step, the share of each class among all tokens, the low-entropy set and the
  high-covariance set (:func:`class_shares`), and compares a SENT run with a ``token_filter=content``
  run (entropy curves, Pass@k) in :func:`compare_runs`.

Word lists: English closed classes written out below (articles/determiners, pronouns, prepositions,
conjunctions, auxiliary and modal verbs, particles and common discourse adverbs), in the spirit of
the closed-class lists of standard stop-word lists; number words are the cardinals/ordinals up to
"billion". Other languages plug in through ``LANGUAGES`` (:func:`register_language`).

Caveats: a sub-word piece ("ing", "ation") is classed as content because its word is unknown; a
decoded token that carries two words is classed by its whole text; the classes are lexical, not
syntactic ("that" is always a function word).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._io import save_figure


CATEGORIES = ("function", "punctuation", "number", "content")

_EN_FUNCTION = """
a an the this that these those some any each every either neither no another such what which whose
whatever whichever both all half several many much more most few fewer less least other own same
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its
itself we us our ours ourselves they them their theirs themselves one ones oneself who whom whoever
someone somebody something anyone anybody anything everyone everybody everything nobody nothing none
about above across after against along amid among around as at before behind below beneath beside
besides between beyond but by despite down during except for from in inside into like near of off on
onto out outside over past per plus since than through throughout till to toward towards under
underneath unlike until up upon via with within without minus times
and or nor so yet if then else because although though while whereas unless whether once lest whenever
wherever when where why how
be am is are was were been being have has had having do does did doing done will would shall should
can could may might must ought need dare let lets
not n't 's 're 've 'd 'll 'm to there here also just only even very too quite rather again already
still ever never always often now thus hence therefore however moreover furthermore indeed instead
otherwise meanwhile else namely e.g. i.e. etc ok okay yes oh well
"""
_EN_NUMBERS = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
million billion first second third fourth fifth sixth seventh eighth ninth tenth half twice thrice
"""
_NUMBER_RE = re.compile(r"^[+\-−]?(\d+([.,]\d+)*|\.\d+)(st|nd|rd|th|%)?$")
# Byte-level BPE (GPT-2 / Qwen) and SentencePiece markers, mapped to the whitespace they stand for.
_BPE_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t", "č": "\r"}


@dataclass(frozen=True)
class Language:
    """A language's closed-class word lists (lower-case)."""

    name: str
    function_words: frozenset = field(default_factory=frozenset)
    number_words: frozenset = field(default_factory=frozenset)


LANGUAGES: dict[str, Language] = {
    "en": Language(
        "English",
        frozenset(_EN_FUNCTION.split()) - frozenset(["one"]),  # "one" is counted as a number
        frozenset(_EN_NUMBERS.split()),
    )
}


def register_language(code: str, language: Language) -> None:
    """Add or replace a language in :data:`LANGUAGES` (e.g. ``register_language("de", Language(...))``)."""
    if not isinstance(language, Language):
        raise ValueError(f"language must be an analysis.linguistic_filter.Language, got {type(language).__name__}")
    LANGUAGES[code] = language


def normalize_token(token: str) -> str:
    """Decode BPE whitespace markers and strip surrounding whitespace ("Ġthe" -> "the", "▁The" -> "The")."""
    for marker, ws in _BPE_MARKERS.items():
        token = token.replace(marker, ws)
    return token.strip()


def classify_token(token: str, language: str = "en") -> str:
    """Class of one decoded token: ``function``, ``punctuation``, ``number`` or ``content``.

    Empty / whitespace-only tokens count as punctuation (they are layout). Case-insensitive.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; registered: {sorted(LANGUAGES)} (see register_language)")
    if not isinstance(token, str):
        raise ValueError(f"token must be a str, got {type(token).__name__}")
    lang = LANGUAGES[language]
    text = normalize_token(token)
    if not text or all(unicodedata.category(ch)[0] in "PSZ" for ch in text):
        return "punctuation"
    low = text.lower()
    if _NUMBER_RE.match(text) or low in lang.number_words:
        return "number"
    if low in lang.function_words:
        return "function"
    return "content"


def is_content_token(token: str) -> bool:
    """True unless ``token`` is a function word, punctuation/whitespace or a number (English lists).

    Used by the trainer's ``token_filter="content"`` (``analysis.linguistic_filter:is_content_token``).
    """
    return classify_token(token) == "content"


def content_mask(tokens: list[str]) -> list[bool]:
    """:func:`is_content_token` over a list of decoded tokens."""
    return [is_content_token(t) for t in tokens]


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
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    per_step = shares[shares["step"] >= 0]
    for ax, name in zip(axes, sets):
        piv = per_step[per_step["set"] == name].pivot(index="step", columns="category", values="share")
        piv = piv.reindex(columns=list(CATEGORIES)).fillna(0)
        ax.stackplot(piv.index, *[piv[c] for c in CATEGORIES], labels=CATEGORIES, alpha=0.85)
        ax.set(title=f"{name} tokens", xlabel="step", ylim=(0, 1))
    axes[0].set_ylabel("share of tokens")
    axes[-1].legend(loc="upper right", fontsize=7)
    return save_figure(fig, path_stem)


def compare_runs(runs: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Entropy curves (metrics.jsonl) and Pass@k (eval/*.parquet) of labelled run folders.

    ``runs`` maps a label (e.g. ``"sent"``, ``"sent_content"``) to a run folder. Returns
    ``(curves: run, step, key, value)``, ``(passk: run, suite, k, pass_at_k, n_prompts)`` and a list of
    notes naming what was missing and the command that makes it.
    """
    from analysis._io import eval_pass_at_k, read_metrics

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

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for (run, key), g in curves[curves["key"].str.startswith("entropy")].groupby(["run", "key"]):
        axes[0].plot(g["step"], g["value"], label=f"{run}: {key}")
    axes[0].set(xlabel="step", ylabel="token entropy (nats)", title="entropy during training")
    for run, g in passk.groupby("run"):
        for suite, gs in g.groupby("suite"):
            axes[1].plot(gs["k"], gs["pass_at_k"], marker="o", label=f"{run}: {suite}")
    axes[1].set(xlabel="k", ylabel="Pass@k", xscale="log", title="Pass@k")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no artifact", ha="center", transform=ax.transAxes)
    return save_figure(fig, path_stem)
