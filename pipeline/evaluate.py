"""evaluate stage: every model file the pipeline produced, scored once on the held-out test split,
and the probes of claim 5 (vanishing gradients) on validation reviews.

Reads   data/prepared/ (the test split; validation reviews for the memory probe); for each experiment E
        of train.experiments and seed S of base.seeds models/E/seedS.keras, metrics/train/E/seedS.json
        and metrics/train/E/seedS-gradients.csv; for each tune.architectures entry A models/A-tuned.keras
        and reports/tuning/A.json; params base.seed, base.seeds, prepare.num_words, train.*,
        tune.architectures, evaluate.*
Writes  reports/evaluation.json (the headline, DVC metrics: per model test/accuracy/mean, test/accuracy/sd
        and n; the champion by mean val/accuracy); in reports/evaluation/: replicates.csv (a row per model
        file), summary.json (per model the distributions of test/accuracy and val/accuracy), pairwise.csv
        (McNemar's exact test, every pair), roc/<model>.csv and confusion/<model>.csv (DVC plots),
        gradients.csv (DVC plots), gradient_reach.csv, memory.csv, run.json (machine, date, data, commit);
        the test metrics into each model file's MLflow run(s), found by the file's hash
Run     python -m pipeline.evaluate   (or: dvc repro evaluate)

This stage only measures: nothing is chosen or changed by what it sees, and the champion is named by
validation accuracy, never test. Each model reads the test reviews with its own maxlen and the shared
padding. A model is an experiment (a file per seed of base.seeds: its replicates) or a tuned model (one
file, seed base.seed); its numbers are distributions over its replicates (pipeline.claims.describe).
ROC curve and confusion matrix are of its first replicate in base.seeds order.

Pooling rule of pairwise.csv: a and b are compared on paired replicates, those with the same seed when
they share seeds (two experiments); when they share none (a tuned model against an experiment) the i-th
replicate of a with the i-th of b in base.seeds order, for the first min(n_a, n_b). The paired replicates'
right/wrong vectors on the test reviews are concatenated, and McNemar's exact test counts the reviews
only a, or only b, gets right over all of them.

Claim 5's probes cover every replicate of the experiments named after their architecture (dense,
simplernn, lstm, gru): gradients.csv and gradient_reach.csv from the input-gradient norms the train stage
recorded, memory.csv from pipeline.probes.memory_accuracy on evaluate.probe_reviews validation reviews.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import config, probes
from pipeline.claims import describe
from pipeline.config import Params, settings_of
from pipeline.data import load_stats, pad
from pipeline.metrics import classification, discordant, mcnemar_exact, roc_curve
from pipeline.paths import (
    CONFUSION_DIR,
    EVALUATION,
    EVALUATION_RUN,
    GRADIENT_REACH,
    GRADIENTS,
    MEMORY,
    PAIRWISE,
    PREPARED_DIR,
    REPLICATES,
    ROC_DIR,
    SUMMARY,
    model_path,
    train_gradients_path,
    train_metrics_path,
    tuned_model_path,
    tuning_report_path,
    write_outputs,
)
from pipeline.stage import UserError, outputs_written, run

PREDICT_BATCH = 512  # reviews per inference batch, for the throughput figure too
# A replicate's validation numbers as the train stage recorded them (a tuned model has val/accuracy only).
VALIDATION = ("val/accuracy", "best/val/accuracy", "last/val/accuracy", "kept/epoch")
TEST = ("test/accuracy", "test/loss", "test/roc_auc", "test/f1")


@dataclass(frozen=True)
class Replicate:
    """One model file to evaluate: an experiment's seed, or a tuned model."""

    model: str  # the experiment's name, or <architecture>-tuned
    kind: str  # "default" (train stage) or "tuned" (tune stage)
    seed: int
    path: Path
    settings: dict  # architecture, maxlen, units, embedding_dim, dropout, epochs (+ learning_rate when tuned)
    validation: dict  # the VALIDATION keys; None where the tune stage records no such number


def find_replicates(params: Params) -> tuple[list[Replicate], list[str]]:
    """The model files the params say exist, in seed order per model, and a note for each that is missing."""
    found, missing = [], []
    for name, experiment in params.train.experiments.items():
        for seed in params.base.seeds:
            path, metrics = model_path(name, seed), train_metrics_path(name, seed)
            # The train stage writes these three together; without all of them the replicate is not there.
            if not all(p.is_file() for p in (path, metrics, train_gradients_path(name, seed))):
                missing.append(f"{path} (run `dvc repro train@{name}-{seed}`)")
                continue
            recorded = json.loads(metrics.read_text(encoding="utf-8"))
            found.append(Replicate(name, "default", seed, path, vars(experiment),
                                   {key: recorded[key] for key in VALIDATION}))
    for architecture in params.tune.architectures:
        path, summary = tuned_model_path(architecture), tuning_report_path(architecture)
        if not (path.is_file() and summary.is_file()):
            missing.append(f"{path} (run `dvc repro tune@{architecture}`)")
            continue
        study = json.loads(summary.read_text(encoding="utf-8"))
        settings = settings_of(params, architecture, study["best_params"])
        found.append(Replicate(f"{architecture}-tuned", "tuned", params.base.seed, path, settings,
                               dict.fromkeys(VALIDATION) | {"val/accuracy": study["best_value"]}))
    return found, missing


def probed_experiments(params: Params) -> dict[str, int]:
    """Claim 5's experiments (each named after its architecture) and their maxlen, checked against the
    memory probe's layout before any work starts."""
    chosen = {name: e.maxlen for name, e in params.train.experiments.items() if name == e.architecture}
    content, distances = params.evaluate.memory_content, params.evaluate.memory_distances
    for name, maxlen in chosen.items():
        if content + max(distances) > maxlen:
            raise UserError(f"params.yaml: evaluate.memory_content = {content} plus the largest "
                            f"evaluate.memory_distances = {max(distances)} exceeds train.experiments.{name}.maxlen "
                            f"= {maxlen}: lower them so that the content still fits in the window")
    return chosen


def predict(model, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities for ``x`` and reviews per second (after one warm-up batch traced the graph)."""
    model.predict(x[:PREDICT_BATCH], batch_size=PREDICT_BATCH, verbose=0)
    started = time.perf_counter()
    probabilities = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    return probabilities, len(x) / (time.perf_counter() - started)


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


def model_summary(group: list[Replicate], results: dict[Path, dict]) -> dict:
    """summary.json's entry for one model, from its replicates in seed order."""
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


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Score every model file on the test split once; probe claim 5 on "
                                        "validation reviews (params.yaml evaluate.*).").parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    params = config.load()
    load_stats(params.prepare.num_words)
    probed = probed_experiments(params)
    found, missing = find_replicates(params)
    for note in missing:
        print(f"not evaluated: {note}", flush=True)
    if not found:
        raise UserError("no model to evaluate: run `dvc repro train` (and `dvc repro tune`) first")

    import keras

    from pipeline import provenance, tracking
    from pipeline.data import load_split
    from pipeline.models import load as load_model

    root = tracking.project_root(Path.cwd())
    tracking.start(root, os.environ.get("MLFLOW_TRACKING_URI"))
    test, val = load_split("test"), load_split("val")
    content, distances = params.evaluate.memory_content, params.evaluate.memory_distances
    memory_set = val.take(probes.memory_rows(val, content, params.evaluate.probe_reviews))
    if len(memory_set) == 0 and any(r.kind == "default" and r.model in probed for r in found):
        raise UserError(f"params.yaml: evaluate.memory_content = {content}: no validation review is longer; "
                        "lower it")
    labels = test.labels.astype(bool)
    padding, truncating = params.train.padding, params.train.truncating
    print(f"evaluating {len(found)} model files on {len(test):,} test reviews; memory probe on "
          f"{len(memory_set):,} validation reviews", flush=True)

    results, correct, groups, norms, memory, files = {}, {}, {}, {}, [], {}
    for number, replicate in enumerate(found, 1):
        keras.backend.clear_session()
        model = load_model(replicate.path)
        maxlen = replicate.settings["maxlen"]
        if model.input_shape[1] not in (None, maxlen):
            raise UserError(f"{replicate.path}: built for maxlen {model.input_shape[1]}, params say {maxlen}; "
                            "rerun its train or tune stage")
        probabilities, speed = predict(model, pad(test, maxlen, padding, truncating))
        metrics = classification(labels, probabilities)
        metrics |= {"test/reviews_per_second": round(speed, 1), "parameters": model.count_params()}
        results[replicate.path] = metrics
        name = replicate.model
        if name not in groups:  # its first replicate in seed order draws the ROC curve and the confusion matrix
            fpr, tpr = roc_curve(labels, probabilities)
            files[ROC_DIR / f"{name}.csv"] = csv_text(("fpr", "tpr"), [(f"{f:.6f}", f"{t:.6f}") for f, t in
                                                                        zip(fpr, tpr, strict=True)])
            files[CONFUSION_DIR / f"{name}.csv"] = csv_text(("actual", "predicted"), zip(
                labels.astype(int), (probabilities >= 0.5).astype(int), strict=True))
        groups.setdefault(name, []).append(replicate)
        correct.setdefault(name, {})[replicate.seed] = (probabilities >= 0.5) == labels
        if replicate.kind == "default" and name in probed:  # claim 5, on validation reviews only
            norms.setdefault(name, {})[replicate.seed] = read_gradients(train_gradients_path(name, replicate.seed))
            memory += [(name, replicate.seed, row["filler"], row["distance"], row["accuracy"]) for row in
                       probes.memory_accuracy(model, memory_set, maxlen, content, distances, PREDICT_BATCH)]
        print(f"[{number}/{len(found)}] {name} seed {replicate.seed}: test/accuracy {metrics['test/accuracy']:.4f} "
              f"[{metrics['test/accuracy_ci_low']:.4f}, {metrics['test/accuracy_ci_high']:.4f}], "
              f"ROC AUC {metrics['test/roc_auc']:.4f}, {speed:,.0f} reviews/s", flush=True)

    summary = {name: model_summary(group, results) for name, group in groups.items()}
    top = headline(summary)
    files[REPLICATES] = csv_text(("model", "kind", "seed", *VALIDATION, *TEST), [
        (r.model, r.kind, r.seed, *(r.validation[k] for k in VALIDATION), *(results[r.path][k] for k in TEST))
        for r in found])
    files[SUMMARY] = tracking.dumps(summary)
    files[PAIRWISE] = pairwise_table(correct)
    files[GRADIENTS], files[GRADIENT_REACH] = gradient_tables(norms)
    files[MEMORY] = csv_text(("model", "seed", "filler", "distance", "accuracy"), memory)
    commit, dirty = provenance.git_state(Path.cwd())
    files[EVALUATION_RUN] = tracking.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": provenance.machine(),
        "data.sha256": provenance.data_hash(PREPARED_DIR), "git.commit": commit, "git.dirty": dirty,
        "versions": provenance.versions(), "seeds": list(params.base.seeds), "champion": top["champion"]["model"],
        "missing": missing,
    })
    files[EVALUATION] = tracking.dumps(top)
    # All or none; no curve is left of a model that is gone.
    write_outputs(files, replace_folders=(ROC_DIR, CONFUSION_DIR))
    outputs_written()

    test_split = provenance.split_datasets(Path.cwd(), {"test": "testing"})["datasets"][0]
    logged = tracking.log_test_metrics(results, test_split)
    unlogged = [str(r.path) for r in found if not logged.get(r.path)]
    print(f"test metrics logged to {sum(map(len, logged.values()))} MLflow runs", flush=True)
    if unlogged:
        print(f"no MLflow run in this store made {', '.join(unlogged)} (restored from DVC's cache?); their test "
              f"metrics are in {REPLICATES} only", flush=True)
    champion = top["champion"]
    print(f"champion by validation accuracy: {champion['model']} (val/accuracy {champion['val/accuracy']:.4f}, "
          f"test/accuracy {champion['test/accuracy']:.4f}, means over seeds); wrote {EVALUATION}")


if __name__ == "__main__":
    run(main)
