"""What a machine can see wrong in a figure (docs/FIGURES-STYLE.md): the checks behind tests/test_figures.py.

:func:`figure_problems` draws the figure once and returns one sentence per defect:

* text outside the figure, or cut by its clip box (a title, a label, a legend entry, an annotation);
* text smaller than 7 pt; a figure wider than 2,400 px at 150 dpi;
* a legend over the data area of a panel (legends go outside the data);
* a panel with nothing to show (no finite data) and no note saying why: notes carry ``gid="note"``
  (:data:`NOTE_GID`, written by :func:`sent.report_plots.add_note`);
* a special token (``<pad>``, ``</s>``, ``<|endoftext|>``, ...) drawn as text.

:func:`sent.report.savefig` logs these as warnings, so a notebook run says what a reviewer would see.
Drawn texts are collected while the figure draws, so tick labels matplotlib keeps but does not draw are not judged.
"""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib
import numpy as np


#: ``gid`` of the text that says why a panel (or part of it) is empty.
NOTE_GID = "note"
#: ``gid`` prefix of reference lines that are not data (stage boundaries).
STAGE_GID = "stage"
MIN_FONT_PT = 7.0
MAX_WIDTH_PX = 2400
README_DPI = 150
_TOL = 1.0  # pixels


@contextmanager
def _record_drawn_texts(out: list):
    from matplotlib.text import Text

    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            out.append(self)
        return original(self, renderer)

    Text.draw = draw
    try:
        yield
    finally:
        Text.draw = original


def drawn_texts(fig) -> list:
    """The non-empty Text artists drawn when ``fig`` is rendered (titles, labels, ticks, legends, annotations)."""
    texts: list = []
    with _record_drawn_texts(texts):
        fig.canvas.draw()
    return list(dict.fromkeys(texts))


def _inside(inner, outer, tol: float = _TOL) -> bool:
    return (inner.x0 >= outer.x0 - tol and inner.y0 >= outer.y0 - tol and inner.x1 <= outer.x1 + tol
            and inner.y1 <= outer.y1 + tol)


def _overlap(a, b, tol: float = _TOL) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _label(t) -> str:
    text = " ".join(t.get_text().split())
    return text if len(text) <= 40 else text[:37] + "..."


def text_problems(fig, texts: list | None = None) -> list[str]:
    """Texts outside the figure, cut by their clip box, or smaller than 7 pt."""
    texts = drawn_texts(fig) if texts is None else texts
    renderer = fig.canvas.get_renderer()
    out = []
    for t in texts:
        box = t.get_window_extent(renderer)
        if not _inside(box, fig.bbox):
            out.append(f"text {_label(t)!r} extends outside the figure")
        clip = t.get_clip_box() if t.get_clip_on() else None
        if clip is not None and not _inside(box, clip):
            out.append(f"text {_label(t)!r} is clipped by its axes")
        if t.get_fontsize() < MIN_FONT_PT - 1e-6:
            out.append(f"text {_label(t)!r} is {t.get_fontsize():.1f} pt (< {MIN_FONT_PT:g} pt)")
    return out


def _finite(values) -> bool:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return bool(arr.size) and bool(np.isfinite(arr).any())


def has_data(ax) -> bool:
    """True when the panel draws finite data: a line (stage lines excluded), a filled area or scatter, a bar, an
    image, or a table."""
    for line in ax.get_lines():
        if line.get_visible() and not str(line.get_gid() or "").startswith(STAGE_GID) and _finite(line.get_ydata()):
            return True
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        offsets = coll.get_offsets()
        paths = coll.get_paths()
        if (len(offsets) and _finite(offsets)) or any(len(p.vertices) and _finite(p.vertices) for p in paths):
            return True
    for patch in ax.patches:
        if isinstance(patch, matplotlib.patches.Rectangle) and patch.get_visible():
            if np.isfinite(patch.get_height()) and patch.get_height() != 0 and np.isfinite(patch.get_width()):
                return True
    return bool(ax.images) or bool(ax.tables)


def has_note(ax) -> bool:
    return any(t.get_gid() == NOTE_GID and t.get_text().strip() for t in ax.texts)


def empty_panel_problems(fig) -> list[str]:
    """Panels (axes with a frame, or frameless ones holding nothing at all) without finite data and without a note."""
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or getattr(ax, "_colorbar", None) is not None or _is_colorbar(ax):
            continue
        if has_data(ax) or has_note(ax):
            continue
        if not ax.axison and ax.texts:  # a frameless text panel (a legend or caption axes) is not a data panel
            continue
        name = ax.get_title() or f"panel {i + 1}"
        out.append(f"panel {name!r} shows no finite data and has no note saying why")
    return out


def _is_colorbar(ax) -> bool:
    return any(getattr(ax, attr, None) is not None for attr in ("_colorbar_info", "_colorbar"))


def legend_problems(fig) -> list[str]:
    """Legends whose box overlaps the data area of a panel that draws data."""
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    out = []
    for leg in legends:
        if not leg.get_visible():
            continue
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.axison and has_data(ax) and _overlap(box, ax.get_window_extent(renderer)):
                out.append(f"legend overlaps the data area of panel {ax.get_title() or '(untitled)'!r}")
    return out


def special_token_problems(texts: list) -> list[str]:
    from sent.tokens import is_special_token

    return [f"special token {_label(t)!r} is drawn" for t in texts if is_special_token(t.get_text().strip())]


def size_problems(fig, dpi: int = README_DPI) -> list[str]:
    width = fig.get_size_inches()[0] * dpi
    return [f"figure is {width:.0f} px wide at {dpi} dpi (> {MAX_WIDTH_PX})"] if width > MAX_WIDTH_PX + 0.5 else []


def figure_problems(fig) -> list[str]:
    """Every check above; an empty list for a figure a reviewer would accept on these counts."""
    texts = drawn_texts(fig)
    return (size_problems(fig) + text_problems(fig, texts) + legend_problems(fig) + empty_panel_problems(fig)
            + special_token_problems(texts))
