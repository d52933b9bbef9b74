"""Pictures of a model version's metrics, drawn with Matplotlib's Agg canvas
(no pyplot state, so concurrent requests do not share a figure)."""
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
# Cells bigger than this (pixels) would only waste space; smaller ones stay clickable.
MAX_CELL = 60
MIN_CELL = 18


def confusion_png(labels, matrix):
    """(PNG bytes, cells) of a confusion matrix (rows: true class, columns:
    predicted). `cells` lists (row, column, x0, y0, x1, y1) in image pixels,
    for an HTML image map."""
    if not len(labels):
        fig = Figure(figsize=(4, 1), dpi=DPI)
        FigureCanvasAgg(fig)
        fig.text(0.5, 0.5, "no evaluation images", ha="center", va="center")
        return _png(fig), []
    matrix = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    n = len(labels)
    cell = max(MIN_CELL, min(MAX_CELL, 480 // n))
    side = n * cell / DPI
    margin_left, margin_bottom, pad = 1.8, 1.8, 0.5
    width, height = side + margin_left + pad, side + margin_bottom + pad
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([margin_left / width, margin_bottom / height, side / width, side / height])
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
    for r in range(len(labels)):
        for c in range(len(labels)):
            ax.text(c, r, str(matrix[r, c]), ha="center", va="center", fontsize=8,
                    color="white" if shares[r, c] > 0.5 else "black")
    short = [name if len(name) <= 16 else name[:15] + "…" for name in labels]
    ax.set_xticks(range(len(labels)), short, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), short, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    fig.canvas.draw()
    pixel_height = fig.bbox.height
    cells = []
    for r in range(len(labels)):
        for c in range(len(labels)):
            (xa, ya), (xb, yb) = ax.transData.transform([(c - 0.5, r - 0.5), (c + 0.5, r + 0.5)])
            ya, yb = pixel_height - ya, pixel_height - yb
            cells.append((r, c, int(round(min(xa, xb))), int(round(min(ya, yb))),
                          int(round(max(xa, xb))), int(round(max(ya, yb)))))
    return _png(fig), cells


def curves_png(history):
    """Training curves (loss and accuracy per epoch, validation dashed) as PNG bytes."""
    fig = Figure(figsize=(8, 3.2), dpi=DPI)
    FigureCanvasAgg(fig)
    for position, metric in ((1, "loss"), (2, "accuracy")):
        ax = fig.add_subplot(1, 2, position)
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            values = history.get(key) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _png(fig):
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
