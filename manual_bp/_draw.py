"""The network drawn as the document's Figure 1: a column of nodes per layer.

Layer 0 is the input A[0], layers 1 to L-1 the hidden layers of activation
g, layer L the sigmoid output. Each column is labelled with its width n[l]
and, for l >= 1, the shapes of W[l] (n[l] x n[l-1]) and b[l] (n[l] x 1).
Consecutive columns are joined by every edge W[l] stands for. A column
wider than `MAX_NODES` shows its first and last nodes around a vertical
ellipsis; its label keeps the true n[l].

matplotlib is an optional dependency (`pip install 'manual_bp[plot]'`); it
is imported only when a picture is drawn, and only its Agg canvas is used,
so no display is needed and pyplot's global state is left alone.
"""

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from manual_bp._io import InputError

MAX_NODES = 12  # node slots drawn per column; wider layers are elided
MAX_LAYERS = 16  # deeper networks no longer fit a readable picture

_X_STEP = 3.0  # horizontal distance between columns, in node spacings
_RADIUS = 0.32  # node radius, in node spacings
_COLOURS = {"input": "#9ecae1", "hidden": "#d9d9d9", "output": "#fdae6b"}
# How to install the optional plotting extra; the command line says the same.
PLOT_EXTRA = "pip install 'manual_bp[plot]', or pip install -e '.[plot]' in a clone"


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """The widths n[0], ..., n[L] as a tuple of ints, or a ValueError.

    Raises:
      ValueError: if there are fewer than 2 or more than MAX_LAYERS + 1
        widths, or one is not a positive integer.
    """
    try:
        widths = tuple(sizes)
        ok = all(isinstance(n, int) and not isinstance(n, bool) for n in widths)
    except TypeError:
        widths, ok = (), False
    if not ok or len(widths) < 2 or min(widths) < 1:
        raise ValueError(
            "expected the widths n[0], n[1], ..., n[L], L >= 1, as positive "
            f"integers, e.g. (5, 4, 3, 1); got {sizes!r}"
        )
    if len(widths) - 1 > MAX_LAYERS:
        raise ValueError(
            f"too many layers to draw legibly: L = {len(widths) - 1}, at most "
            f"{MAX_LAYERS}"
        )
    return widths


def _slots(n: int) -> list[int | None]:
    """The node numbers drawn for a layer of width n, None for the ellipsis."""
    if n <= MAX_NODES:
        return list(range(n))
    head = MAX_NODES // 2
    tail = MAX_NODES - head - 1
    return [*range(head), None, *range(n - tail, n)]


def _labels(sizes: Sequence[int], l: int) -> tuple[str, list[str]]:
    """The title and the lines of maths under column l."""
    L, n = len(sizes) - 1, sizes[l]
    if l == 0:
        return "layer 0: input", [
            f"$n^{{[0]}} = {n}$",
            f"$A^{{[0]}}$: ${n} \\times m$",
        ]
    lines = [
        f"$n^{{[{l}]}} = {n}$",
        f"$W^{{[{l}]}}$: ${n} \\times {sizes[l - 1]}$",
        f"$b^{{[{l}]}}$: ${n} \\times 1$",
    ]
    if l == L:
        return f"layer {l}: output", [*lines, f"$A^{{[{l}]}} = \\sigma(Z^{{[{l}]}})$"]
    return f"layer {l}: hidden", [*lines, f"$A^{{[{l}]}} = g(Z^{{[{l}]}})$"]


def _matplotlib() -> SimpleNamespace:
    """The few matplotlib classes used, imported on first use."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle
    except ImportError as err:
        raise ImportError(
            f"drawing the network needs matplotlib, an optional extra: {PLOT_EXTRA}"
        ) from err
    return SimpleNamespace(
        Figure=Figure,
        FigureCanvasAgg=FigureCanvasAgg,
        LineCollection=LineCollection,
        Circle=Circle,
    )


def draw_network(sizes: Sequence[int], path: str | os.PathLike) -> None:
    """Draws the network of widths `sizes` to a PNG file at `path`.

    The file is written atomically: a temporary file in the same directory,
    then `os.replace`, so `path` is either the old file or the whole picture.

    Args:
      sizes: the widths n[0], n[1], ..., n[L], e.g. (5, 4, 3, 1).
      path: where to write the PNG.

    Raises:
      ValueError: if `sizes` is not L + 1 >= 2 positive integers with
        L <= MAX_LAYERS.
      ImportError: if matplotlib is not installed; the message says how.
      InputError: if `path` cannot be written.
    """
    sizes = check_sizes(sizes)
    mpl = _matplotlib()
    L = len(sizes) - 1
    tallest = max(len(_slots(n)) for n in sizes)

    # Node centres: column l at x = l * _X_STEP, slots centred on y = 0.
    centres, ellipses = [], []
    for l, n in enumerate(sizes):
        slots = _slots(n)
        top = (len(slots) - 1) / 2
        column = []
        for i, node in enumerate(slots):
            xy = (l * _X_STEP, top - i)
            if node is None:
                ellipses.append(xy)
            else:
                column.append(xy)
        centres.append(column)

    width = L * _X_STEP + 3.0
    height = tallest + 3.6
    fig = mpl.Figure(figsize=(0.62 * width, 0.62 * height), dpi=150)
    mpl.FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1.5, L * _X_STEP + 1.5)
    ax.set_ylim(-tallest / 2 - 2.6, tallest / 2 + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")

    edges = [(a, b) for l in range(L) for a in centres[l] for b in centres[l + 1]]
    ax.add_collection(
        mpl.LineCollection(edges, colors="#7f7f7f", linewidths=0.6, alpha=0.5, zorder=1)
    )
    for l, column in enumerate(centres):
        kind = "input" if l == 0 else "output" if l == L else "hidden"
        for x, y in column:
            circle = mpl.Circle((x, y), _RADIUS, facecolor=_COLOURS[kind])
            circle.set(edgecolor="#404040", linewidth=0.8, zorder=2)
            ax.add_patch(circle)
    for x, y in ellipses:
        ax.text(x, y, "⋮", ha="center", va="center", fontsize=16, zorder=3)

    bottom = -tallest / 2 - 0.3
    for l in range(L + 1):
        title, lines = _labels(sizes, l)
        x = l * _X_STEP
        ax.text(x, bottom, title, ha="center", va="top", fontsize=10, weight="bold")
        ax.text(
            x,
            bottom - 0.55,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=9,
            linespacing=1.5,
        )
    network = "-".join(map(str, sizes))
    ax.text(
        L * _X_STEP / 2,
        tallest / 2 + 0.6,
        f"Figure 1: the {network} network",
        ha="center",
        va="center",
        fontsize=12,
    )
    _write_png(fig, path)


def _write_png(fig: Any, path: str | os.PathLike) -> None:
    """Saves `fig` as a PNG at `path` through a temporary file and a rename."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as file:
            fig.savefig(file, format="png", bbox_inches="tight", pad_inches=0.15)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            reason = err.strerror or str(err)
            raise InputError(f"{os.fspath(path)}: cannot write: {reason}") from err
        raise
