"""The evaluate stage's output tables, from the scores it measured: pure functions, no Keras.

Pooling rule of pairwise.csv: a and b are compared on paired replicates, those with the same seed when
they share seeds (every model trains with base.seeds); when they share none (results of different seed
lists) the i-th replicate of a with the i-th of b in base.seeds order, for the first min(n_a, n_b). The
paired replicates' right/wrong vectors on the test reviews are concatenated, and McNemar's exact test
counts the reviews only a, or only b, gets right over all of them.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from pipeline import probes
from pipeline.distributions import describe
from pipeline.metrics import discordant, mcnemar_exact


def csv_text(header: tuple | list, rows: list) -> str:
    """A CSV file; None and NaN are written as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row]
                     for row in rows)
    return buffer.getvalue()


def read_gradients(path: Path) -> dict[str, np.ndarray]:
    """Snapshot -> mean gradient norm per input step, earliest step of the window first."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = sorted(csv.DictReader(file), key=lambda row: -int(row["steps_before_end"]))
    return {snapshot: np.array([float(row[snapshot]) for row in rows]) for snapshot in probes.SNAPSHOTS}


def gradient_tables(norms: dict[str, dict[int, dict[str, np.ndarray]]]) -> tuple[str, str]:
    """gradients.csv and gradient_reach.csv from model -> seed -> snapshot -> norms (earliest step first).

    gradients.csv has, per model and snapshot, the median over seeds of the relative norm, on the last
    steps every model's window has (the shortest), aligned at the window's end.
    """
    columns, reach = {}, []
    for model, seeds in norms.items():
        for seed, snapshots in seeds.items():
            reach += [(model, seed, snapshot, probes.reach(values)) for snapshot, values in snapshots.items()]
        for snapshot in probes.SNAPSHOTS:
            columns[f"{model}/{snapshot}"] = np.median([probes.relative(s[snapshot]) for s in seeds.values()], axis=0)
    steps = min((len(values) for values in columns.values()), default=0)
    rows = [[steps - 1 - i, *(float(f"{values[len(values) - steps + i]:.6g}") for values in columns.values())]
            for i in range(steps)]
    return csv_text(["steps_before_end", *columns], rows), csv_text(("model", "seed", "snapshot", "reach"), reach)


def paired(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated right/wrong vectors of the replicates a and b pair (seed -> vector, in seed order;
    the pooling rule of the module docstring)."""
    shared = [seed for seed in a if seed in b]
    pairs = [(a[seed], b[seed]) for seed in shared] if shared else list(zip(a.values(), b.values(), strict=False))
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def pairwise_table(correct: dict[str, dict[int, np.ndarray]]) -> str:
    """McNemar's exact test for every pair of models, on their pooled paired replicates."""
    names, rows = list(correct), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            only_a, only_b = discordant(*paired(correct[a], correct[b]))
            rows.append((a, b, only_a, only_b, mcnemar_exact(only_a, only_b)))
    return csv_text(("model_a", "model_b", "only_a", "only_b", "mcnemar_p"), rows)


def distribution(values: list[float]) -> dict:
    """The per-seed values and their summary (n is the model's, given once beside)."""
    return {"values": values} | {k: v for k, v in describe(values).items() if k != "n"}


def model_summary(group: list, results: dict[Path, dict]) -> dict:
    """summary.json's entry for one model, from its replicates (pipeline.evaluate.Replicate) in seed order."""
    first = results[group[0].path]
    return {
        "kind": group[0].kind, "settings": group[0].settings, "n": len(group), "seeds": [r.seed for r in group],
        "test/accuracy": distribution([results[r.path]["test/accuracy"] for r in group]),
        "val/accuracy": distribution([r.validation["val/accuracy"] for r in group]),
        "parameters": first["parameters"],
        "test/reviews_per_second": round(float(np.median([results[r.path]["test/reviews_per_second"]
                                                          for r in group])), 1),
    }


def headline(summary: dict[str, dict]) -> dict:
    """reports/evaluation.json: small enough for `dvc exp show`. The champion is chosen on validation only."""
    champion = max(summary, key=lambda model: summary[model]["val/accuracy"]["mean"])
    return {model: {"test/accuracy/mean": s["test/accuracy"]["mean"], "test/accuracy/sd": s["test/accuracy"]["sd"],
                    "n": s["n"]} for model, s in summary.items()} | {
        "champion": {"model": champion, "val/accuracy": summary[champion]["val/accuracy"]["mean"],
                     "test/accuracy": summary[champion]["test/accuracy"]["mean"]}}
