"""Figures for run folders and reports, as PNG files (matplotlib's Agg backend: no display needed).

Each function takes plain arrays and a path and writes one PNG atomically. Faces are grayscale
(n, h, w) or (n, h, w, 1), either uint8 or floats in [0, 1]; keypoints are (n, 30) pixels, x1, y1,
x2, y2, ... with NaN where a keypoint is missing.
"""
import numpy as np

from pipeline.core.fileio import atomic_path

TRUE_COLOUR, PREDICTED_COLOUR = "#2ca02c", "#d62728"   # green, red


def _pyplot():
    # Only when a figure is drawn, and the Agg backend chosen first: importing pyplot at the top would
    # pick a display backend in a notebook that imports the pipeline.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"), see above

    return plt


def _save(figure, path):
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=80)
    _pyplot().close(figure)


def plot_history(history, path, title=""):
    """Learning curves from a history frame (epoch, loss, val_loss, ...)."""
    plt = _pyplot()
    metrics = [m for m in ("loss", "accuracy") if m in history]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        axis.plot(history["epoch"], history[metric], label=f"train {metric}")
        if f"val_{metric}" in history:
            axis.plot(history["epoch"], history[f"val_{metric}"], label=f"validation {metric}")
        axis.set_xlabel("epoch")
        if metric == "loss":
            axis.set_yscale("log")   # the first epochs' loss would flatten the rest
        axis.set_title(f"{title} {metric}".strip())
        axis.legend()
    figure.tight_layout()
    _save(figure, path)


def face_grid(images, path, truth=None, predicted=None, captions=None, columns=8):
    """Faces in a grid, with true keypoints in green and predicted ones in red where given."""
    plt = _pyplot()
    n = len(images)
    rows = max(1, -(-n // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for i, axis in enumerate(axes.flat):
        axis.axis("off")
        if i >= n:
            continue
        axis.imshow(np.squeeze(images[i]), cmap="gray", vmin=0, vmax=1 if images.dtype.kind == "f" else 255)
        for points, colour in ((truth, TRUE_COLOUR), (predicted, PREDICTED_COLOUR)):
            if points is not None:
                axis.scatter(points[i, 0::2], points[i, 1::2], s=6, c=colour, linewidths=0)
        if captions is not None:
            axis.set_title(captions[i], fontsize=7)
    figure.tight_layout(pad=0.3)
    _save(figure, path)


def bars(names, values, path, title, xlabel):
    """A horizontal bar chart, one bar per name, top to bottom in the given order."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 0.28 * len(names) + 1.2))
    positions = np.arange(len(names))[::-1]
    axis.barh(positions, values)
    axis.set_yticks(positions, names, fontsize=8)
    for position, value in zip(positions, values):
        label = f"{value:,.0f}" if float(value).is_integer() else f"{value:.3g}"
        axis.text(value, position, f" {label}", va="center", fontsize=7)
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    figure.tight_layout()
    _save(figure, path)


def grouped_counts(counts, classes, path, title):
    """Class counts per group ({group: (classes,) counts}) as grouped bars."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(counts))
    for i, (group, values) in enumerate(counts.items()):
        axis.bar(np.arange(len(classes)) + i * width, values, width, label=group)
    axis.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=30, fontsize=8)
    axis.set_ylabel("images")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    _save(figure, path)


def confusion(matrix, classes, path, title):
    """A row-normalised confusion matrix: rows true classes, columns predicted."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 5))
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=8)
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.5 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    _save(figure, path)
