"""Figures shared by the train stage (MLflow artifacts) and the report stage.

The report's figures show distributions over seeds: every replicate drawn thin (or as a dot), the mean or
median over seeds drawn thick, and the spread across seeds as a band.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display on these machines

import numpy as np  # noqa: E402
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


def seed_curves(histories: dict[int, list[dict]], kept: dict[int, int], title: str) -> Figure:
    """The tutorial's picture over seeds: each seed's validation curve thin with its kept epoch marked,
    the mean validation curve thick, the mean training curve as dots; accuracy and loss."""
    table = pd.concat([pd.DataFrame(rows).assign(seed=seed) for seed, rows in histories.items()])
    mean = table.groupby("epoch").mean(numeric_only=True)
    figure, panels = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axes, metric in zip(panels, ("accuracy", "loss"), strict=True):
        for seed, rows in histories.items():
            curve = pd.DataFrame(rows).set_index("epoch")[f"val/{metric}"]
            axes.plot(curve.index, curve, color="b", linewidth=0.8, alpha=0.35)
            if seed in kept and kept[seed] in curve.index:
                axes.plot(kept[seed], curve[kept[seed]], "v", color="C1", markersize=7)
        axes.plot(mean.index, mean[f"train/{metric}"], "bo", label=f"training {metric} (mean)")
        axes.plot(mean.index, mean[f"val/{metric}"], "b", linewidth=2.5, label=f"validation {metric} (mean)")
        axes.plot([], [], "b", linewidth=0.8, alpha=0.35, label="validation, each seed")
        axes.plot([], [], "v", color="C1", label="kept epoch, each seed")
        axes.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}, {len(histories)} seeds")
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes.legend(fontsize="small")
    return figure


def seed_dots(names: list[str], values: list[list[float]], means: list[float],
              low: list[float | None], high: list[float | None]) -> Figure:
    """Test accuracy per model: every seed as a dot, the mean as a bar with its 95% CI (where n > 1)."""
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(names) + 1.3), constrained_layout=True)
    for row, (seeds, mean, lo, hi) in enumerate(zip(values, means, low, high, strict=True)):
        offsets = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else [0.0]
        axes.scatter(seeds, [row + o for o in offsets], color="C0", alpha=0.6, s=22,
                     label="each seed" if row == 0 else None)
        if lo is not None and hi is not None:
            axes.errorbar([mean], [row], xerr=[[mean - lo], [hi - mean]], fmt="none", ecolor="k", capsize=5,
                          label="95% CI of the mean" if row == 0 else None)
        axes.plot([mean], [row], "|", color="k", markersize=16, markeredgewidth=2.5,
                  label="mean" if row == 0 else None)
    axes.set_yticks(range(len(names)), names)
    axes.set_ylim(len(names) - 0.5, -0.5)
    axes.set(xlabel="test accuracy (25,000 reviews)", title="Test accuracy per model, every seed")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize="small", loc="lower left")
    return figure


def gradient_spread(steps_before_end: np.ndarray, relative: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Relative input-gradient norm per step, one panel per snapshot: median over seeds, min-max band.

    ``relative`` maps a model to a snapshot to an array of shape (seeds, steps), ordered like
    ``steps_before_end``.
    """
    snapshots = list(dict.fromkeys(s for per_model in relative.values() for s in per_model))
    figure, panels = plt.subplots(1, len(snapshots), figsize=(4.5 * len(snapshots), 4), constrained_layout=True,
                                  sharey=True, squeeze=False)
    for axes, snapshot in zip(panels[0], snapshots, strict=True):
        for number, (model, per_snapshot) in enumerate(relative.items()):
            if snapshot not in per_snapshot:
                continue
            values, color = per_snapshot[snapshot], f"C{number}"
            axes.fill_between(steps_before_end, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2,
                              linewidth=0)
            axes.plot(steps_before_end, np.median(values, axis=0), color=color, label=f"{model} ({len(values)})")
        axes.set_yscale("log")
        axes.set_xlim(max(steps_before_end), min(steps_before_end))
        axes.set(xlabel="steps before the last input step", title=f"gradient per step: {snapshot}")
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("|d loss / d word vector| / median of last 10 steps")
    panels[0][-1].legend(fontsize="small", title="model (seeds)")
    return figure


def memory_curves(memory: pd.DataFrame) -> Figure:
    """Memory probe: accuracy against the distance of the content from the window's end, one panel per
    filler; per model the mean over seeds with the min-max band. Columns model, seed, filler, distance, accuracy."""
    fillers = list(dict.fromkeys(memory["filler"]))
    figure, panels = plt.subplots(1, len(fillers), figsize=(5 * len(fillers), 4), constrained_layout=True,
                                  sharey=True, squeeze=False)
    for axes, filler in zip(panels[0], fillers, strict=True):
        rows = memory[memory["filler"] == filler]
        for number, (model, table) in enumerate(rows.groupby("model", sort=False)):
            spread = table.groupby("distance")["accuracy"].agg(["mean", "min", "max"])
            color = f"C{number}"
            axes.fill_between(spread.index, spread["min"], spread["max"], color=color, alpha=0.2, linewidth=0)
            axes.plot(spread.index, spread["mean"], "o-", color=color, label=model)
        axes.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        axes.set(xlabel=f"filler tokens after the content ({filler!r})", title=f"memory probe, filler {filler!r}")
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("validation accuracy (mean, min-max over seeds)")
    panels[0][-1].legend(fontsize="small")
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
