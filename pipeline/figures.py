"""Figures shared by the train stage (MLflow artifacts) and the report stage."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on these machines

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def learning_curves(rows: list[dict], title: str) -> Figure:
    """The tutorial's picture: training as dots, validation as a line; accuracy and loss."""
    epochs = [r["epoch"] for r in rows]
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axes, metric in ((accuracy, "accuracy"), (loss, "loss")):
        axes.plot(epochs, [r[f"train/{metric}"] for r in rows], "bo", label=f"training {metric}")
        axes.plot(epochs, [r[f"val/{metric}"] for r in rows], "b", label=f"validation {metric}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(f"{title}: training and validation {metric}")
        axes.legend()
    return figure
