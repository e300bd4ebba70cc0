"""Token figures of the notebooks and of ``sent report``: one response's tokens as an entropy heat map, and word
clouds of a token set (the trainer's low-entropy and high-covariance selections), from recorded rollouts.

Special tokens and padding (``<pad>``, ``<s>``, ``</s>``, the EOS, ``<|...|>``) never appear: they are told by the
tokenizer's own special ids and strings when the tokenizer is at hand (:func:`load_special_tokens`), else by their
spelling (:func:`sent.tokens.is_special_token`). A selection figure says whether the selection was decided by ties
(:func:`selection_ties`): tokens with exactly the value of tokens left out, where the order of the tokens, not their
value, put them in the set.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections import Counter

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sent.report_plots import add_note, new_figure
from sent.tokens import special_token_mask


logger = logging.getLogger(__name__)

#: The trainer's selections: (mask column, the value that ranks the tokens, the column the set is chosen among).
SELECTIONS = {
    "low_entropy": ("entropy", None),  # the lowest-entropy tokens of the micro-batch
    "high_cov": ("covariance", "low_entropy"),  # the highest-covariance tokens among the low-entropy ones
}
SET_NAMES = {"low_entropy": "low-entropy tokens", "high_cov": "high-covariance tokens"}


# ------------------------------------------------------------------------------------------------ special tokens

def load_special_tokens(tokenizer: str | os.PathLike | None) -> tuple[set[int] | None, set[str] | None]:
    """``(special ids, special strings)`` of a tokenizer folder or hub id (local files only: nothing is
    downloaded); ``(None, None)`` when it cannot be loaded (the spelling rule is used then, logged)."""
    if tokenizer is None:
        return None, None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any failure falls back to the spelling rule, which is logged
        logger.warning("tokenizer %s not loaded (%s): special tokens told by their spelling", tokenizer,
                       " ".join(str(err).split())[:200])
        return None, None
    ids = {int(i) for i in tok.all_special_ids}
    strings = set(tok.all_special_tokens)
    if tok.pad_token_id is not None:
        ids.add(int(tok.pad_token_id))
    return ids, strings


def shown_mask(row, special_ids=None, special_tokens=None) -> np.ndarray:
    """Per token of a rollout row: True where the token is shown (not a special or padding token)."""
    ids = row["token_ids"] if "token_ids" in row and special_ids is not None else None
    return ~np.asarray(special_token_mask(list(row["tokens"]), ids, special_ids, special_tokens), dtype=bool)


# ------------------------------------------------------------------------------------------------ ties

def selection_ties(rollouts: pd.DataFrame, mask_column: str) -> dict:
    """How many selected tokens were decided by ties: per recorded step, the selected tokens whose ranking value
    (entropy for ``low_entropy``, covariance for ``high_cov``, :data:`SELECTIONS`) equals exactly that of a token of
    the same step left out of the set. ``{"selected", "tied", "steps_with_ties"}``.

    The trainer ranks within a micro-batch, which the rollouts do not record, so a step is the unit here: a tie
    within a micro-batch is always found (when its rows were recorded); an equal value across two micro-batches of
    one step counts too."""
    value_col, among = SELECTIONS[mask_column]
    selected = tied = 0
    steps = []
    if mask_column not in rollouts.columns or value_col not in rollouts.columns:
        return {"selected": 0, "tied": 0, "steps_with_ties": []}
    for step, g in rollouts.groupby("step"):
        values = np.concatenate([np.asarray(v, dtype=float) for v in g[value_col]]) if len(g) else np.array([])
        mask = np.concatenate([np.asarray(m, dtype=bool) for m in g[mask_column]]) if len(g) else np.array([], bool)
        pool = (np.concatenate([np.asarray(m, dtype=bool) for m in g[among]]) if among and among in g
                else np.ones_like(mask))
        chosen, left = values[mask & pool], values[~mask & pool]
        n_tied = int(np.isin(chosen, left).sum())
        selected += int(len(chosen))
        tied += n_tied
        if n_tied:
            steps.append(int(step))
    return {"selected": selected, "tied": tied, "steps_with_ties": steps}


def ties_note(ties: dict | dict[str, dict], what: str | None = None) -> str:
    """One line for a figure: whether ties decided the selection(s). ``ties`` is one :func:`selection_ties` result
    (named ``what``) or ``{set name: result}``."""
    named = {what or "selection": ties} if "selected" in ties else ties
    parts, steps = [], set()
    for name, t in named.items():
        parts.append(f"{name} {t['tied']} of {t['selected']}")
        steps.update(t["steps_with_ties"])
    head = "decided by ties (selected tokens whose value equals that of a token left out)"
    if not any(t["tied"] for t in named.values()):
        return f"{head}: none ({', '.join(parts)})"
    return f"{head}: {', '.join(parts)}; in recorded step(s) {_steps(sorted(steps))}"


def _steps(steps: list[int], n: int = 6) -> str:
    return ", ".join(map(str, steps[:n])) + (f", ... ({len(steps)} steps)" if len(steps) > n else "")


# ------------------------------------------------------------------------------------------------ heat map

def _display_token(tok: str) -> str:
    return tok.replace("\n", "↵").replace("\t", "→") or "∅"


def pick_response(rollouts: pd.DataFrame) -> int:
    """Index of the response that shows the token sets best: the most high-covariance tokens, then the most
    low-entropy ones, then the first in (prompt_id, sample_id) order."""
    score = np.zeros(len(rollouts))
    for weight, col in ((1e6, "high_cov"), (1.0, "low_entropy")):
        if col in rollouts.columns:
            score = score + weight * rollouts[col].map(lambda m: int(np.sum(m))).to_numpy()
    return int(np.argmax(score)) if len(score) else 0


def token_heatmap(row: pd.Series, line_chars: int = 70, vmax: float | None = None, special_ids=None,
                  special_tokens=None, ties: dict | None = None):
    """One rollout's tokens coloured by entropy (nats); low-entropy tokens underlined, high-cov boxed red.

    ``row`` is one row of a rollout parquet (docs/ARCHITECTURE.md). Special and padding tokens are left out (their
    count is said). ``ties`` (:func:`selection_ties` of the row's step) adds whether ties decided the selection.
    Tokens are laid out on a monospace grid, wrapped at ``line_chars`` characters.
    """
    keep = shown_mask(row, special_ids, special_tokens)
    tokens = [_display_token(t) for t, k in zip(row["tokens"], keep) if k]
    ent = np.asarray(row["entropy"], dtype=float)[keep]  # (T,)
    n = len(ent)
    low = np.asarray(row["low_entropy"], dtype=bool)[keep] if "low_entropy" in row else np.zeros(n, bool)
    high = np.asarray(row["high_cov"], dtype=bool)[keep] if "high_cov" in row else np.zeros(n, bool)
    pos, x, y = [], 0, 0
    for tok in tokens:
        if x and x + len(tok) > line_chars:
            x, y = 0, y + 1
        pos.append((x, y))
        x += len(tok)
    n_lines = y + 1
    fig, ax = new_figure(line_chars * 0.11 + 1.2, 0.32 * n_lines + 2.0)
    top = float(ent.max()) if n else 0.0
    norm = matplotlib.colors.Normalize(0, vmax if vmax is not None else max(top, 1e-6))
    cmap = matplotlib.colormaps["viridis"]
    for tok, (x, y), h, lo, hi in zip(tokens, pos, ent, low, high):
        ax.add_patch(plt.Rectangle((x, -y - 0.9), len(tok), 0.8, color=cmap(norm(h)), lw=0))
        ax.text(x, -y - 0.5, tok, family="monospace", fontsize=8, va="center",
                color="white" if norm(h) < 0.5 else "black")
        if lo:
            ax.plot([x, x + len(tok)], [-y - 0.95, -y - 0.95], color="#222222", lw=0.8)
        if hi:
            ax.add_patch(plt.Rectangle((x, -y - 0.9), len(tok), 0.8, fill=False, ec="#d62728", lw=1.6))
    ax.set_xlim(0, line_chars)
    ax.set_ylim(-n_lines - 0.2, 0.1)
    ax.axis("off")
    if not n:
        add_note(ax, "no token to show (the response holds special tokens only)")
    elif np.ptp(ent) == 0:
        add_note(ax, f"every token has entropy {ent[0]:.3g} nats: the colour carries no information", where="below")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.08, pad=0.04, aspect=40,
                 label="token entropy (nats)")
    hidden = int((~keep).sum())
    lines = [f"step {row['step']}, {row['prompt_id']} sample {row['sample_id']}, reward {float(row['reward']):.2f}"
             + (f"; {hidden} special token{'s' if hidden > 1 else ''} not shown" if hidden else ""),
             f"underline = low-entropy set ({int(low.sum())}/{n} tokens), red box = high-covariance ({int(high.sum())})"]
    if ties is not None:
        lines.append(ties)
    width = int(line_chars * 1.6)  # characters of 8 pt text that fit the figure's width
    ax.set_title("\n".join(textwrap.fill(line, width) for line in lines), fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------------ word clouds

def token_frequencies(rollouts: pd.DataFrame, mask_column: str, lowercase: bool = True, special_ids=None,
                      special_tokens=None) -> Counter:
    """Counts of token strings (whitespace-stripped) where ``mask_column`` (e.g. 'low_entropy') is True, special and
    padding tokens left out."""
    if mask_column not in rollouts.columns:
        raise ValueError(f"mask_column={mask_column!r} not in the rollouts; available: {list(rollouts.columns)}")
    counts: Counter = Counter()
    for _, row in rollouts.iterrows():
        keep = shown_mask(row, special_ids, special_tokens)
        for tok, m, k in zip(row["tokens"], row[mask_column], keep):
            word = tok.strip().lower() if lowercase else tok.strip()
            if m and k and word:
                counts[word] += 1
    return counts


def wordcloud_figure(freqs: Counter, title: str, seed: int = 0, ax=None, note: str | None = None,
                     empty_reason: str = "no token in this set"):
    """Word cloud of token counts (``wordcloud`` package, its bundled font; deterministic with ``seed``).
    ``note`` goes under the cloud (e.g. :func:`ties_note`); an empty set says ``empty_reason``."""
    from wordcloud import WordCloud

    fig, ax = (ax.figure, ax) if ax is not None else new_figure(7.0, 4.3)
    ax.axis("off")
    if not freqs:
        add_note(ax, empty_reason)
    else:
        wc = WordCloud(width=700, height=380, background_color="white", random_state=seed,
                       collocations=False, min_font_size=6).generate_from_frequencies(dict(freqs))
        # aspect "auto": an aspect-locked image moves after constrained layout and pushes the note off the figure
        ax.imshow(wc, interpolation="bilinear", aspect="auto")
    ax.set_title(title, fontsize=9)
    if note:
        width_in = ax.get_position().width * fig.get_figwidth() * 0.85  # constrained layout narrows the axes a bit
        chars = max(40, int(width_in / (0.55 * 7.5 / 72)))  # characters of 7.5 pt text across the panel
        ax.text(0.5, -0.02, textwrap.fill(note, chars), transform=ax.transAxes, ha="center", va="top", fontsize=7.5,
                color="#444444")
    return fig
