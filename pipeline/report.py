"""Plots for the run folder. Imports matplotlib (headless) and never the stages."""


def plot_history(history, path, title=""):
    """Learning curves from a history frame (epoch, loss, val_loss, ...) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    metrics = [m for m in ("loss", "accuracy") if m in history]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        axis.plot(history["epoch"], history[metric], label=f"train {metric}")
        if f"val_{metric}" in history:
            axis.plot(history["epoch"], history[f"val_{metric}"], label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title} {metric}".strip())
        axis.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=80)
    plt.close(figure)
