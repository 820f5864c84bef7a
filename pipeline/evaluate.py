"""evaluate stage: every model file the pipeline produced, scored once on the held-out test split,
and the probes of claim 5 (vanishing gradients) on validation reviews.

Reads   data/prepared/ (the test split; validation reviews for the memory probe); for each experiment E
        of train.experiments and seed S of base.seeds models/E/seedS.keras, metrics/train/E/seedS.json
        and metrics/train/E/seedS-gradients.csv; for each tune.architectures entry A the same files of its
        confirmed replicates A-tuned (confirm stage) and reports/tuning/A.json; params base.seed, base.seeds,
        prepare.num_words, train.*, tune.architectures, evaluate.*
Writes  reports/evaluation.json (the headline, DVC metrics: per model test/accuracy/mean, test/accuracy/sd
        and n; the champion by mean val/accuracy); in reports/evaluation/: replicates.csv (a row per model
        file), summary.json (per model the distributions of test/accuracy and val/accuracy), pairwise.csv
        (McNemar's exact test, every pair), roc/<model>.csv and confusion/<model>.csv (DVC plots),
        gradients.csv (DVC plots), gradient_reach.csv, memory.csv, run.json (machine, date, data, commit);
        the test metrics into each model file's MLflow run(s), found by the file's hash
Run     python -m pipeline.evaluate   (or: dvc repro evaluate)

This stage only measures: nothing is chosen or changed by what it sees, and the champion is named by
validation accuracy, never test. Each model reads the test reviews with its own maxlen and the shared
padding; a model trained on length buckets reads each review at its own width, as in its validation.
A model is an experiment (a file per seed of base.seeds: its replicates) or a tuned model (a study's best
configuration retrained with each seed of base.seeds by the confirm stage); its numbers are distributions
over its replicates (pipeline.distributions.describe).
ROC curve and confusion matrix are of its first replicate in base.seeds order.

pairwise.csv pools replicates as pipeline.evaluation_tables says.

Claim 5's probes cover every replicate of the experiments named after their architecture (dense,
simplernn, lstm, gru): gradients.csv and gradient_reach.csv from the input-gradient norms the train stage
recorded, memory.csv from pipeline.probes.memory_accuracy on evaluate.probe_reviews validation reviews.
"""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import buckets, config, probes, trim_heap
from pipeline.config import Params, experiment_settings, settings_of, vocabulary_size
from pipeline.data import load_stats, pad
from pipeline.evaluation_tables import (
    csv_text,
    gradient_tables,
    headline,
    model_summary,
    pairwise_table,
    read_gradients,
)
from pipeline.metrics import classification, roc_curve
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
    tuned_name,
    tuning_report_path,
    write_outputs,
)
from pipeline.stage import UserError, outputs_written, run

PREDICT_BATCH = 512  # reviews per inference batch, for the throughput figure too
# A replicate's validation numbers as the train (or confirm) stage recorded them.
VALIDATION = ("val/accuracy", "best/val/accuracy", "last/val/accuracy", "kept/epoch")
TEST = ("test/accuracy", "test/loss", "test/roc_auc", "test/f1")


@dataclass(frozen=True)
class Replicate:
    """One model file to evaluate: a seed of an experiment or of a tuned configuration."""

    model: str  # the experiment's name, or <architecture>-tuned
    kind: str  # "default" (train stage) or "tuned" (confirm stage)
    seed: int
    path: Path
    settings: dict  # architecture, maxlen, units, embedding_dim, dropout, epochs (+ what a study searched)
    validation: dict  # the VALIDATION keys


def find_replicates(params: Params) -> tuple[list[Replicate], list[str]]:
    """The model files the params say exist, in seed order per model, and a note for each that is missing:
    each default experiment's replicates (train stage), then each study's confirmed ones (confirm stage)."""
    models = [(name, "default", experiment_settings(experiment), f"train@{name}")
              for name, experiment in params.train.experiments.items()]
    for architecture in params.tune.architectures:
        # Without its study's summary a tuned model's settings are unknown: its replicates count as missing.
        summary = tuning_report_path(architecture)
        study = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else None
        settings = settings_of(params, architecture, study["best_params"]) if study else None
        models.append((tuned_name(architecture), "tuned", settings, f"confirm@{architecture}"))
    found, missing = [], []
    for name, kind, settings, stage in models:
        for seed in params.base.seeds:
            path, metrics = model_path(name, seed), train_metrics_path(name, seed)
            # The train (confirm) stage writes these three together; without all of them the replicate is not there.
            if settings is None or not all(p.is_file() for p in (path, metrics, train_gradients_path(name, seed))):
                missing.append(f"{path} (run `dvc repro {stage}-{seed}`)")
                continue
            recorded = json.loads(metrics.read_text(encoding="utf-8"))
            found.append(Replicate(name, kind, seed, path, settings, {key: recorded[key] for key in VALIDATION}))
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


def predict(model, x: np.ndarray, lengths: np.ndarray, padding: str, batch_size: int) -> tuple[np.ndarray, float]:
    """Probabilities for ``x`` and reviews per second (after a warm-up that traced the graph).

    A model trained on length buckets (it takes any length) reads each review at its own width, as its
    validation did in training and as the served model does (:mod:`pipeline.buckets`), in batches of the
    training batch size, one compiled step per width. Other models read ``x`` as it is.
    """
    if model.input_shape[1] is not None:
        model.predict(x[:PREDICT_BATCH], batch_size=PREDICT_BATCH, verbose=0)
        started = time.perf_counter()
        probabilities = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
        return probabilities, len(x) / (time.perf_counter() - started)

    def batch(rows: np.ndarray) -> np.ndarray:  # full batches only: one shape per width
        padded = np.zeros((batch_size, rows.shape[1]), dtype=rows.dtype)
        padded[: len(rows)] = rows
        return np.asarray(model.predict_on_batch(padded)).reshape(-1)[: len(rows)]

    # Warm-up: one review of each width compiles that width's step (every batch is padded to batch_size), so
    # the timed pass below compiles nothing; a warm-up over all of x would read the test split twice.
    maxlen = x.shape[1]
    _, first = np.unique(buckets.width(np.minimum(lengths, maxlen), maxlen), return_index=True)
    buckets.predict(batch, x[first], lengths[first], padding, batch_size)
    started = time.perf_counter()
    probabilities = buckets.predict(batch, x, lengths, padding, batch_size)
    return probabilities, len(x) / (time.perf_counter() - started)


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Score every model file on the test split once; probe claim 5 on "
                                        "validation reviews (params.yaml evaluate.*).").parse_args()
    params = config.load()
    load_stats()
    probed = probed_experiments(params)
    found, missing = find_replicates(params)
    for note in missing:
        print(f"not evaluated: {note}", flush=True)
    if not found:
        raise UserError("no model to evaluate: run `dvc repro train` (and `dvc repro confirm`) first")

    from pipeline import provenance, tracking

    tracking.start(tracking.project_root(Path.cwd()), os.environ.get("MLFLOW_TRACKING_URI"))
    scores = score(params, found, probed)
    files, top = output_files(params, found, missing, scores)
    # All or none; no curve is left of a model that is gone.
    write_outputs(files, replace_folders=(ROC_DIR, CONFUSION_DIR))
    outputs_written()

    test_split = provenance.split_datasets(Path.cwd(), {"test": "testing"})["datasets"][0]
    logged = tracking.log_test_metrics(scores.results, test_split)
    unlogged = [str(r.path) for r in found if not logged.get(r.path)]
    print(f"test metrics logged to {sum(map(len, logged.values()))} MLflow runs", flush=True)
    if unlogged:
        print(f"no MLflow run in this store made {', '.join(unlogged)} (restored from DVC's cache?); their test "
              f"metrics are in {REPLICATES} only", flush=True)
    champion = top["champion"]
    print(f"champion by validation accuracy: {champion['model']} (val/accuracy {champion['val/accuracy']:.4f}, "
          f"test/accuracy {champion['test/accuracy']:.4f}, means over seeds); wrote {EVALUATION}")


@dataclass
class Scores:
    """What evaluate measured: per model file its test metrics; per model its replicates, their right/wrong
    vectors on the test reviews (seed -> vector) and claim 5's gradient norms; the memory probe's rows; the
    ROC and confusion files of each model's first replicate."""

    results: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    correct: dict = field(default_factory=dict)
    norms: dict = field(default_factory=dict)
    memory: list = field(default_factory=list)
    files: dict = field(default_factory=dict)


def score(params: Params, found: list[Replicate], probed: dict[str, int]) -> Scores:
    """Every model file once on the test split; claim 5's probes on validation reviews."""
    import keras

    from pipeline.data import load_split
    from pipeline.models import load as load_model

    test, val = load_split("test"), load_split("val")
    content, distances = params.evaluate.memory_content, params.evaluate.memory_distances
    memory_set = val.take(probes.memory_rows(val, content, params.evaluate.probe_reviews))
    if len(memory_set) == 0 and any(r.kind == "default" and r.model in probed for r in found):
        raise UserError(f"params.yaml: evaluate.memory_content = {content}: no validation review is longer; "
                        "lower it")
    labels = test.labels.astype(bool)
    print(f"evaluating {len(found)} model files on {len(test):,} test reviews; memory probe on "
          f"{len(memory_set):,} validation reviews", flush=True)
    scores = Scores()
    # clear_session() below collects garbage once a model: without this, each collection walks the ~400,000
    # objects of the imports and the splits (0.2-0.3 s a model); frozen, they are left out of every collection.
    gc.freeze()
    for number, replicate in enumerate(found, 1):
        keras.backend.clear_session()
        trim_heap()  # the previous model's compiled steps and buffers
        model, name, maxlen = load_model(replicate.path), replicate.model, replicate.settings["maxlen"]
        num_words = vocabulary_size(params, replicate.settings)  # each model reads its own vocabulary
        if model.input_shape[1] not in (None, maxlen):
            raise UserError(f"{replicate.path}: built for maxlen {model.input_shape[1]}, params say {maxlen}; "
                            "rerun its train or confirm stage")
        x = pad(test.capped(num_words), maxlen, params.train.padding, params.train.truncating)
        probabilities, speed = predict(model, x, test.lengths, params.train.padding, params.train.batch_size)
        metrics = classification(labels, probabilities)
        metrics |= {"test/reviews_per_second": round(speed, 1), "parameters": model.count_params()}
        scores.results[replicate.path] = metrics
        if name not in scores.groups:  # its first replicate in seed order draws the ROC curve and the confusion
            scores.files |= curve_files(name, labels, probabilities)
        scores.groups.setdefault(name, []).append(replicate)
        scores.correct.setdefault(name, {})[replicate.seed] = (probabilities >= 0.5) == labels
        if replicate.kind == "default" and name in probed:  # claim 5, on validation reviews only
            scores.norms.setdefault(name, {})[replicate.seed] = read_gradients(
                train_gradients_path(name, replicate.seed))
            scores.memory += [(name, replicate.seed, row["filler"], row["distance"], row["accuracy"]) for row in
                              probes.memory_accuracy(model, memory_set.capped(num_words), maxlen, content, distances,
                                                     PREDICT_BATCH)]
        print(f"[{number}/{len(found)}] {name} seed {replicate.seed}: test/accuracy {metrics['test/accuracy']:.4f} "
              f"[{metrics['test/accuracy_ci_low']:.4f}, {metrics['test/accuracy_ci_high']:.4f}], "
              f"ROC AUC {metrics['test/roc_auc']:.4f}, {speed:,.0f} reviews/s", flush=True)
    return scores


def curve_files(name: str, labels: np.ndarray, probabilities: np.ndarray) -> dict[Path, str]:
    """A model's ROC curve and confusion pairs (DVC plots)."""
    fpr, tpr = roc_curve(labels, probabilities)
    return {ROC_DIR / f"{name}.csv": csv_text(("fpr", "tpr"), [(f"{f:.6f}", f"{t:.6f}")
                                                               for f, t in zip(fpr, tpr, strict=True)]),
            CONFUSION_DIR / f"{name}.csv": csv_text(("actual", "predicted"), zip(
                labels.astype(int), (probabilities >= 0.5).astype(int), strict=True))}


def output_files(params: Params, found: list[Replicate], missing: list[str], scores: Scores) -> tuple[dict, dict]:
    """Every file the stage writes, by path, and the headline (reports/evaluation.json's content)."""
    from pipeline import provenance, tracking

    summary = {name: model_summary(group, scores.results) for name, group in scores.groups.items()}
    top = headline(summary)
    files = dict(scores.files)
    files[REPLICATES] = csv_text(("model", "kind", "seed", *VALIDATION, *TEST), [
        (r.model, r.kind, r.seed, *(r.validation[k] for k in VALIDATION), *(scores.results[r.path][k] for k in TEST))
        for r in found])
    files[SUMMARY] = tracking.dumps(summary)
    files[PAIRWISE] = pairwise_table(scores.correct)
    files[GRADIENTS], files[GRADIENT_REACH] = gradient_tables(scores.norms)
    files[MEMORY] = csv_text(("model", "seed", "filler", "distance", "accuracy"), scores.memory)
    commit, dirty = provenance.git_state(Path.cwd())
    files[EVALUATION_RUN] = tracking.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": provenance.machine(),
        "data.sha256": provenance.data_hash(PREPARED_DIR), "git.commit": commit, "git.dirty": dirty,
        "versions": provenance.versions(), "seeds": list(params.base.seeds), "champion": top["champion"]["model"],
        "missing": missing,
    })
    files[EVALUATION] = tracking.dumps(top)
    return files, top

if __name__ == "__main__":
    run(main, end_process=True)
