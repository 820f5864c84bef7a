"""Figures shared by the train stage (MLflow artifacts) and the report stage."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display on these machines

import pandas as pd  # noqa: E402
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


def validation_overlay(histories: dict[str, list[dict]]) -> Figure:
    """Validation accuracy per epoch, every model on one axes."""
    figure, axes = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, rows in histories.items():
        axes.plot([r["epoch"] for r in rows], [r["val/accuracy"] for r in rows], marker=".", label=name)
    axes.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy per epoch")
    axes.legend()
    return figure


def accuracy_intervals(names: list[str], accuracy: list[float], low: list[float], high: list[float]) -> Figure:
    """Test accuracy per model with its 95% Wilson interval."""
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2), constrained_layout=True)
    positions = range(len(names))
    errors = [[a - lo for a, lo in zip(accuracy, low, strict=True)],
              [hi - a for a, hi in zip(accuracy, high, strict=True)]]
    axes.errorbar(accuracy, positions, xerr=errors, fmt="o", capsize=4)
    axes.set_yticks(list(positions), names)
    axes.invert_yaxis()
    axes.set(xlabel="test accuracy (95% Wilson interval, 25,000 reviews)", title="Test accuracy per model")
    axes.grid(axis="x", alpha=0.3)
    return figure


def tuning_scatter(trials: dict[str, pd.DataFrame], settings: tuple[str, ...] = ("maxlen", "units")) -> Figure:
    """Validation accuracy of every tuning trial against each setting, per architecture.

    ``trials`` maps an architecture to its trials table (columns value, state,
    params_<setting>). Completed trials are filled; pruned ones hollow (their value
    is the last epoch they reached, so it understates them).
    """
    figure, panels = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4), constrained_layout=True,
                                  squeeze=False)
    for axes, setting in zip(panels[0], settings, strict=True):
        for number, (architecture, table) in enumerate(trials.items()):
            column = f"params_{setting}"
            if column not in table:
                continue
            color = f"C{number}"
            for state, fill in (("COMPLETE", color), ("PRUNED", "none")):
                rows = table[table["state"] == state]
                axes.scatter(rows[column], rows["value"], facecolors=fill, edgecolors=color,
                             label=f"{architecture} ({state.lower()})")
        axes.set(xlabel=setting, ylabel="validation accuracy", title=f"Tuning trials: accuracy vs. {setting}")
        if setting == "units":
            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    panels[0][-1].legend(fontsize="small")
    return figure


def seconds_per_epoch(names: list[str], seconds: list[float]) -> Figure:
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2), constrained_layout=True)
    axes.barh(names, seconds)
    axes.invert_yaxis()
    axes.set(xlabel="median seconds per training epoch (20,000 reviews)", title="Training time per epoch")
    return figure


def gradient_decay(steps_before_end: list[int], relative: dict[str, list[float]]) -> Figure:
    """Input-gradient norm per time step, relative to the last step, log scale."""
    figure, axes = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, values in relative.items():
        axes.plot(steps_before_end, values, label=name)
    axes.set_yscale("log")
    axes.invert_xaxis()
    axes.set(xlabel="steps before the last input step", ylabel="|d loss / d word vector|, relative to the last step",
             title="How much gradient reaches each word")
    axes.legend()
    return figure
