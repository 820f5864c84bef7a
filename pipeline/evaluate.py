"""evaluate stage: every model the pipeline produced, measured once on the held-out test split.

Reads   data/prepared/ (the test split; validation reviews for the gradient probe),
        models/<experiment>.keras for every train.experiments entry,
        models/<architecture>-tuned.keras and reports/tuning/<architecture>.json for every
        tune.architectures entry; params base.*, prepare.num_words, train.*, tune.architectures
Writes  reports/evaluation.json (model -> test metrics; DVC metrics),
        reports/evaluation/roc/<model>.csv and confusion/<model>.csv (DVC plots),
        reports/evaluation/pairwise.csv (McNemar's exact test, every pair of models),
        reports/evaluation/gradients.csv (input-gradient norm per time step, DVC plots),
        reports/evaluation/run.json (machine, date, data hash, commit);
        the test metrics into each model's MLflow run(s), found by the model file's hash
Run     python -m pipeline.evaluate   (or: dvc repro evaluate)

This stage only measures: no model is chosen or changed by what it sees here.
Each model is fed the test reviews with its own maxlen and the shared padding.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import config
from pipeline.cli import UserError, run
from pipeline.config import Params
from pipeline.data import Sequences, load_stats, pad
from pipeline.metrics import classification, discordant, mcnemar_exact, roc_curve
from pipeline.paths import (
    CONFUSION_DIR,
    EVALUATION,
    EVALUATION_RUN,
    GRADIENTS,
    PAIRWISE,
    PREPARED_DIR,
    ROC_DIR,
    model_path,
    tuned_model_path,
    tuning_report_path,
    write_outputs,
)

PREDICT_BATCH = 512  # reviews per inference batch, for the throughput figure too
GRADIENT_REVIEWS = 256  # validation reviews in the vanishing-gradient probe


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate and the settings it was trained with."""

    name: str  # lstm, lstm-tuned, ...
    kind: str  # "default" (train stage) or "tuned" (tune stage)
    path: Path
    settings: dict  # architecture, maxlen, units, embedding_dim, dropout, epochs (+ learning_rate when tuned)


def model_specs(params: Params) -> tuple[list[ModelSpec], list[str]]:
    """The models the params say exist, and a note for each that is missing."""
    specs, missing = [], []
    for name, experiment in params.train.experiments.items():
        path = model_path(name)
        if path.is_file():
            specs.append(ModelSpec(name, "default", path, vars(experiment)))
        else:
            missing.append(f"{path} (run `dvc repro train@{name}`)")
    for architecture in params.tune.architectures:
        path, summary_path = tuned_model_path(architecture), tuning_report_path(architecture)
        if not (path.is_file() and summary_path.is_file()):
            missing.append(f"{path} (run `dvc repro tune@{architecture}`)")
            continue
        best = json.loads(summary_path.read_text(encoding="utf-8"))["best_params"]
        default = params.train.experiments[architecture]
        settings = vars(default) | {"learning_rate": params.train.learning_rate} | best
        specs.append(ModelSpec(f"{architecture}-tuned", "tuned", path, settings))
    return specs, missing


def predict(model, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities for ``x`` and reviews per second (after one warm-up batch traced the graph)."""
    model.predict(x[:PREDICT_BATCH], batch_size=PREDICT_BATCH, verbose=0)
    started = time.perf_counter()
    probabilities = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    return probabilities, len(x) / (time.perf_counter() - started)


def input_gradient_norms(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean L2 norm over reviews of d(loss)/d(word vector) at each time step: shape (maxlen,).

    The embedding is applied first and watched; the other layers run on it in
    inference mode. Each review's own loss is differentiated (a sum, not a mean), so
    the norms do not shrink with the batch size.
    """
    import keras
    import tensorflow as tf

    embedding, *rest = model.layers
    vectors = embedding(tf.constant(x))
    with tf.GradientTape() as tape:
        tape.watch(vectors)
        hidden = vectors
        for layer in rest:
            hidden = layer(hidden, training=False)
        loss = tf.reduce_sum(keras.losses.binary_crossentropy(tf.constant(y[:, None], tf.float32), hidden))
    gradient = tape.gradient(loss, vectors)
    return tf.reduce_mean(tf.norm(gradient, axis=-1), axis=0).numpy()


def gradient_table(models: dict[str, object], maxlens: dict[str, int], val: Sequences, padding: str,
                   truncating: str) -> str:
    """CSV: steps before the last input step, then per model the mean norm and the norm relative to the last step.

    The probe uses validation reviews at least as long as the longest maxlen, so no
    step is padding: what reaches step t from the loss is what the model learns from it.
    """
    longest = max(maxlens.values())
    rows = np.flatnonzero(val.lengths >= longest)[:GRADIENT_REVIEWS]
    if len(rows) == 0:  # tiny data: the longest reviews, with some padding
        rows = np.argsort(-val.lengths, kind="stable")[:GRADIENT_REVIEWS]
    subset = val.take(rows)
    y = subset.labels.astype(np.float32)
    columns = {"steps_before_end": np.arange(longest - 1, -1, -1)}
    for name, model in models.items():
        norms = np.full(longest, np.nan)
        x = pad(subset, maxlens[name], padding, truncating)
        norms[longest - maxlens[name]:] = input_gradient_norms(model, x, y)
        columns[name] = norms
        columns[f"{name}/relative"] = norms / norms[-1]
    lines = [",".join(columns)]
    for i in range(longest):
        lines.append(",".join(str(int(v[i])) if k == "steps_before_end" else ("" if np.isnan(v[i]) else f"{v[i]:.6g}")
                              for k, v in columns.items()))
    return "\n".join(lines) + "\n"


def pairwise_table(correct: dict[str, np.ndarray]) -> tuple[str, dict[tuple[str, str], float]]:
    """CSV of McNemar's exact test for every pair, and the p-values by (a, b)."""
    names, lines, p_values = list(correct), ["model_a,model_b,accuracy_a,accuracy_b,only_a,only_b,p_value"], {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            only_a, only_b = discordant(correct[a], correct[b])
            p = mcnemar_exact(only_a, only_b)
            p_values[a, b] = p_values[b, a] = p
            lines.append(f"{a},{b},{correct[a].mean():.6f},{correct[b].mean():.6f},{only_a},{only_b},{p:.6g}")
    return "\n".join(lines) + "\n", p_values


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    params = config.load()
    load_stats(params.prepare.num_words)
    specs, missing = model_specs(params)
    for note in missing:
        print(f"not evaluated: {note}", flush=True)
    if not specs:
        raise UserError("no model to evaluate: run `dvc repro train` (and `dvc repro tune`) first")

    import keras

    from pipeline import tracking
    from pipeline.data import load_split
    from pipeline.models import load as load_model

    root = tracking.project_root(Path.cwd())
    tracking.start(root, os.environ.get("MLFLOW_TRACKING_URI"))
    test = load_split("test")
    labels = test.labels.astype(bool)
    padding, truncating = params.train.padding, params.train.truncating
    print(f"evaluating {len(specs)} models on {len(test):,} test reviews", flush=True)

    results, correct, files = {}, {}, {}
    for number, spec in enumerate(specs, 1):
        keras.backend.clear_session()
        model = load_model(spec.path)
        maxlen = spec.settings["maxlen"]
        if model.input_shape[1] not in (None, maxlen):
            raise UserError(f"{spec.path}: built for maxlen {model.input_shape[1]}, params say {maxlen}; "
                            "rerun its train or tune stage")
        probabilities, speed = predict(model, pad(test, maxlen, padding, truncating))
        metrics = classification(labels, probabilities)
        metrics |= {"test/reviews_per_second": round(speed, 1), "parameters": model.count_params()}
        results[spec.name] = metrics
        correct[spec.name] = (probabilities >= 0.5) == labels
        fpr, tpr = roc_curve(labels, probabilities)
        files[ROC_DIR / f"{spec.name}.csv"] = "fpr,tpr\n" + "".join(
            f"{f:.6f},{t:.6f}\n" for f, t in zip(fpr, tpr, strict=True))
        files[CONFUSION_DIR / f"{spec.name}.csv"] = "actual,predicted\n" + "".join(
            f"{int(a)},{int(p)}\n" for a, p in zip(labels, probabilities >= 0.5, strict=True))
        print(f"[{number}/{len(specs)}] {spec.name}: test/accuracy {metrics['test/accuracy']:.4f} "
              f"[{metrics['test/accuracy_ci_low']:.4f}, {metrics['test/accuracy_ci_high']:.4f}], "
              f"ROC AUC {metrics['test/roc_auc']:.4f}, {speed:,.0f} reviews/s", flush=True)

    best = max(results, key=lambda name: results[name]["test/accuracy"])
    files[PAIRWISE], p_values = pairwise_table(correct)
    for name in results:
        results[name]["test/mcnemar_p_vs_best"] = 1.0 if name == best else p_values[name, best]

    # Vanishing gradients: each architecture's default model, on validation reviews only.
    defaults = [s for s in specs if s.kind == "default" and s.name == s.settings["architecture"]]
    if defaults:
        print(f"gradient probe: {', '.join(s.name for s in defaults)} on {GRADIENT_REVIEWS} validation reviews",
              flush=True)
        keras.backend.clear_session()
        probed = {s.name: load_model(s.path) for s in defaults}
        files[GRADIENTS] = gradient_table(probed, {s.name: s.settings["maxlen"] for s in defaults},
                                          load_split("val"), padding, truncating)
    else:  # no default model trained (only tuned ones): the declared output exists, with no rows
        files[GRADIENTS] = "steps_before_end\n"

    commit, dirty = tracking.git_state(Path.cwd())
    files[EVALUATION_RUN] = tracking.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": tracking.machine(),
        "data.sha256": tracking.data_hash(PREPARED_DIR), "git.commit": commit, "git.dirty": dirty,
        "versions": tracking.versions(), "best": best, "missing": missing,
    })
    files[EVALUATION] = tracking.dumps(results)
    # All or none; no curve is left of a model that is gone.
    write_outputs(files, replace_folders=(ROC_DIR, CONFUSION_DIR))

    logged = tracking.log_test_metrics({spec.path: results[spec.name] for spec in specs})
    for spec in specs:
        runs = logged.get(spec.path, [])
        print(f"{spec.name}: test metrics logged to MLflow run {', '.join(runs)}" if runs else
              f"{spec.name}: no MLflow run made {spec.path} in this store (restored from DVC's cache?); "
              f"its test metrics are in {EVALUATION} only")
    print(f"best on test: {best} ({results[best]['test/accuracy']:.4f}); wrote {EVALUATION}")


if __name__ == "__main__":
    run(main)
