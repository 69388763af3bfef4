"""Figures and result files for the experiments, `jaxembed demo` and the notebooks.

Each drawing function draws into a matplotlib ``Axes`` the caller passes, so one figure can hold
several panels side by side (random IDs | one-hot | learned). ``figure`` makes the figure without
``pyplot``: no global state, no display backend, safe in scripts, tests and threads.
``save_figure`` writes atomically (temporary file, then ``os.replace``); results go through
``jaxembed.files.write_json``.

    >>> fig, (left, right) = figure(ncols=2)
    >>> heatmap(left, np.eye(3), ["cat", "dog", "fox"], title="one-hot")
    >>> points_Nx2 = pca_2d(np.random.default_rng(0).normal(size=(3, 8)))
    >>> scatter_words(right, points_Nx2, ["cat", "dog", "fox"], title="random vectors")
    >>> save_figure(fig, "out/similarity.png")
    PosixPath('out/similarity.png')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxembed.files import atomic_open

# Panel size in inches: readable in a README at GitHub's page width with two or three panels.
_PANEL_INCHES = (4.6, 4.0)


def figure(ncols: int = 1, nrows: int = 1, panel_inches=_PANEL_INCHES) -> tuple[Figure, Any]:
    """A new figure of ``nrows x ncols`` panels, made without ``pyplot``.

    Args:
      ncols, nrows: the panel grid.
      panel_inches: (width, height) of one panel.

    Returns:
      ``(fig, axes)``: one ``Axes`` for a single panel, else a flat array of them.

    Example:
      >>> fig, (left, right) = figure(ncols=2)
      >>> fig.get_size_inches().tolist()
      [9.2, 4.0]
    """
    fig = Figure(figsize=(panel_inches[0] * ncols, panel_inches[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    return fig, (axes[0] if axes.size == 1 else axes)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Writes ``fig`` as a PNG atomically, creating the folder; returns the path.

    Example:
      >>> fig, ax = figure()
      >>> save_figure(fig, "out/one_hot.png")
      PosixPath('out/one_hot.png')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def pca_2d(vectors_NxD) -> np.ndarray:
    """Projects vectors onto their first two principal axes (PCA by SVD, in float64).

    The sign of each axis is fixed (its largest coordinate is positive) so that pictures do not
    flip between runs or platforms.

    Args:
      vectors_NxD: N >= 2 vectors.

    Returns:
      points_Nx2: coordinates along the two directions of largest variance (zeros where the
      vectors vary in fewer than two directions).

    Example:
      >>> pca_2d(np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]])).shape
      (3, 2)
    """
    x_NxD = np.asarray(vectors_NxD, dtype=np.float64)
    if x_NxD.ndim != 2 or len(x_NxD) < 2:
        raise ValueError(f"pca_2d needs at least 2 vectors as an (N, D) array; got {x_NxD.shape}")
    centred_NxD = x_NxD - x_NxD.mean(axis=0, keepdims=True)
    u_NxK, s_K, _ = np.linalg.svd(centred_NxD, full_matrices=False)
    points_NxK = u_NxK * s_K[None, :]
    points_Nx2 = np.zeros((len(x_NxD), 2))
    k = min(2, points_NxK.shape[1])
    points_Nx2[:, :k] = points_NxK[:, :k]
    biggest_2 = points_Nx2[np.abs(points_Nx2).argmax(axis=0), [0, 1]]
    return points_Nx2 * np.where(biggest_2 < 0, -1.0, 1.0)[None, :]


def heatmap(
    ax: Axes,
    matrix_NxM,
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    title: str = "",
    vmin: float | None = -1.0,
    vmax: float | None = 1.0,
    cmap: str = "RdBu_r",
    annotate: bool | None = None,
    fmt: str = "{:.2f}",
    aspect: str = "equal",
) -> None:
    """Draws a matrix (a similarity matrix, a table of vectors) with its labels and values.

    Args:
      ax: where to draw.
      matrix_NxM: the values.
      row_labels, col_labels: one label per row / column (columns default to the row labels).
      title: the panel title.
      vmin, vmax: the colour scale (cosines: -1 to 1); None fits the data.
      cmap: a matplotlib colour map; the default is white at 0, red positive, blue negative.
      annotate: print each value in its cell; None does so when the matrix has <= 12 x 12 cells.
      fmt: format of the printed values.
      aspect: "equal" (square cells) or "auto" (fill the panel: long, thin matrices).

    Example:
      >>> fig, ax = figure()
      >>> heatmap(ax, np.array([[1.0, 0.2], [0.2, 1.0]]), ["cat", "dog"], title="cosine similarity")
    """
    values_NxM = np.asarray(matrix_NxM, dtype=np.float64)
    col_labels = row_labels if col_labels is None else col_labels
    if values_NxM.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"heatmap got a {values_NxM.shape} matrix for {len(row_labels)} row and "
            f"{len(col_labels)} column labels - pass one label per row and column"
        )
    image = ax.imshow(values_NxM, vmin=vmin, vmax=vmax, cmap=cmap, aspect=aspect)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_title(title)
    if annotate is None:
        annotate = max(values_NxM.shape) <= 12
    if annotate:
        for (i, j), value in np.ndenumerate(values_NxM):
            red, green, blue, _ = image.cmap(image.norm(value))
            # White text on dark cells, black on light ones (perceived luminance).
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(
                j,
                i,
                fmt.format(value),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )


def scatter_words(
    ax: Axes,
    points_Nx2,
    labels: Sequence[str],
    title: str = "",
    colors: Sequence | None = None,
    arrows: Sequence[tuple[int, int]] = (),
) -> None:
    """Draws labelled points, e.g. ``pca_2d`` of word vectors.

    Args:
      ax: where to draw.
      points_Nx2: one (x, y) per word.
      labels: the words.
      title: the panel title.
      colors: one colour per point (e.g. "C0", "C1" per group); None: all "C0".
      arrows: (i, j) pairs of point indices to join by an arrow from i to j (man -> woman).

    Example:
      >>> fig, ax = figure()
      >>> vectors_NxD = np.array([[1.0, 0.9, 0], [0.9, 1.0, 0], [0, 0.1, 1], [0.1, 0, 0.9]])
      >>> scatter_words(ax, pca_2d(vectors_NxD), ["dog", "cat", "apple", "banana"])
    """
    points_Nx2 = np.asarray(points_Nx2, dtype=np.float64)
    if points_Nx2.shape != (len(labels), 2):
        raise ValueError(f"scatter_words needs ({len(labels)}, 2) points; got {points_Nx2.shape}")
    ax.scatter(points_Nx2[:, 0], points_Nx2[:, 1], c=list(colors) if colors else "C0")
    for i, j in arrows:
        ax.annotate(
            "",
            xy=points_Nx2[j],
            xytext=points_Nx2[i],
            arrowprops={"arrowstyle": "->", "color": "0.6", "shrinkA": 4, "shrinkB": 4},
        )
    for (x, y), label, (dx, dy) in zip(points_Nx2, labels, _label_offsets(points_Nx2), strict=True):
        ha = "left" if dx > 0 else "right"
        ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9, ha=ha)
    ax.margins(0.2)
    ax.set_aspect("equal", adjustable="datalim")  # equal scales: distances on screen are honest
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.set_title(title)


def _label_offsets(points_Nx2: np.ndarray) -> list[tuple[int, int]]:
    """Text offsets (points) that keep the labels of nearby points apart.

    A point closer than 10% of the plot's span to an earlier labelled point takes the next free
    corner (above right, below right, above left, below left), so "tora" and "bora" do not print
    on top of each other.
    """
    corners = [(4, 4), (4, -12), (-4, 4), (-4, -12)]
    span = float(np.ptp(points_Nx2, axis=0).max()) if len(points_Nx2) else 0.0
    radius = 0.1 * span if span > 0 else 0.0
    offsets: list[tuple[int, int]] = []
    for i, point in enumerate(points_Nx2):
        near = [offsets[j] for j in range(i) if np.linalg.norm(points_Nx2[j] - point) <= radius]
        free = [c for c in corners if c not in near]
        offsets.append(free[0] if free else corners[len(near) % len(corners)])
    return offsets


def pair_projection(
    ax: Axes, table_VxD, vocab, pairs: Sequence[tuple[str, str]], title: str = ""
) -> None:
    """Projects the words of word pairs to 2-D (``pca_2d``) with an arrow from each a to its b.

    Parallel arrows of equal length show a shared offset (man -> woman, king -> queen); short
    arrows show related words that sit close together.

    Args:
      ax: where to draw.
      table_VxD: the vectors, row i for ``vocab.index_to_key[i]``.
      vocab: a ``jaxembed.vocab.Vocab`` holding every word of ``pairs``.
      pairs: (a, b) word pairs; a word may appear in several pairs.
      title: the panel title.

    Example:
      >>> from jaxembed.vocab import Vocab
      >>> fig, ax = figure()
      >>> vocab = Vocab.from_keys(["man", "woman", "king", "queen"])
      >>> table_VxD = np.array([[1.0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]])
      >>> pair_projection(ax, table_VxD, vocab, [("man", "woman"), ("king", "queen")])
    """
    words = list(dict.fromkeys(word for pair in pairs for word in pair))
    index = {word: i for i, word in enumerate(words)}
    vectors_NxD = np.asarray(table_VxD)[vocab.encode(words)]
    first = {a for a, _ in pairs}
    scatter_words(
        ax,
        pca_2d(vectors_NxD),
        words,
        title=title,
        colors=["C0" if word in first else "C3" for word in words],
        arrows=[(index[a], index[b]) for a, b in pairs],
    )
    from matplotlib.lines import Line2D

    legend = [
        Line2D([], [], marker="o", linestyle="", color="C0", label="first word of a pair (a)"),
        Line2D([], [], marker="o", linestyle="", color="C3", label="second word (b)"),
        Line2D([], [], color="0.6", label="arrow: a -> b"),
    ]
    ax.legend(handles=legend, loc="best", fontsize=8, framealpha=0.8)


def line_plot(
    ax: Axes,
    x,
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    log: str = "",
) -> None:
    """Draws one line per named series against shared x values (loss curves, cost curves).

    Args:
      ax: where to draw.
      x: the x values.
      series: label -> y values, one per x (NaN leaves a gap).
      xlabel, ylabel, title: the texts.
      log: which axes are logarithmic: "", "x", "y" or "xy".

    Example:
      >>> fig, ax = figure()
      >>> sizes = np.array([1_000, 10_000, 50_257])
      >>> flops = {"one-hot": 2 * 8 * sizes * 768, "lookup": np.full(3, 8 * 768)}
      >>> line_plot(ax, sizes, flops, "V", "FLOPs", log="xy")
    """
    for i, (label, y) in enumerate(series.items()):
        ax.plot(x, y, marker="o" if len(x) <= 20 else None, color=f"C{i}", label=label)
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if len(series) > 1:
        ax.legend()


def format_matrix(
    matrix_NxM, row_labels: Sequence[str], col_labels: Sequence[str] | None = None, fmt="{:7.3f}"
) -> str:
    """A labelled matrix as aligned text, for printing similarity matrices and small tables.

    Example:
      >>> print(format_matrix(np.eye(2), ["cat", "dog"]))
              cat     dog
      cat   1.000   0.000
      dog   0.000   1.000
    """
    values_NxM = np.asarray(matrix_NxM, dtype=np.float64)
    col_labels = row_labels if col_labels is None else col_labels
    width = max(len(fmt.format(0.0)), *(len(label) for label in col_labels))
    first = max(len(label) for label in row_labels)
    lines = [" " * first + "".join(f" {label:>{width}}" for label in col_labels)]
    for label, row in zip(row_labels, values_NxM, strict=True):
        cells = "".join(f" {fmt.format(value):>{width}}" for value in row)
        lines.append(f"{label:<{first}}{cells}")
    return "\n".join(lines)
