"""train stage: fit one replicate (an experiment and a seed) and record it in MLflow.

Reads   data/prepared/ (train and val splits, stats.json), params base.deterministic,
        prepare.num_words, train.* shared keys, train.experiments.<name>, evaluate.probe_reviews
Writes  models/<name>/seed<seed>.keras, metrics/train/<name>/seed<seed>.json,
        metrics/train/<name>/seed<seed>-gradients.csv (gradient per input step at initialisation,
        after epoch 1 and for the kept model), plots/train/<name>/seed<seed>.csv (per-epoch
        history, DVC plots); one MLflow run named "<name> seed <seed>", tagged lab.experiment=<name>
Run     python -m pipeline.train --experiment lstm --seed 1   (or: dvc repro train@lstm-1)

The test split is not read here: it is used once, in the evaluate stage. With train.keep = best
(the default) the saved model is the epoch with the highest validation accuracy, as Keras'
ModelCheckpoint(save_best_only=True) keeps it; with last, the last epoch, as in the tutorial.
The metrics file records the kept, the best and the last epoch either way.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path

from pipeline import config
from pipeline.architectures import NAMES, bucketed
from pipeline.config import ExperimentParams, Params, vocabulary_size
from pipeline.data import load_stats
from pipeline.paths import (
    model_path,
    staged_copy,
    train_gradients_path,
    train_history_path,
    train_metrics_path,
    write_outputs,
)
from pipeline.stage import UserError, outputs_written, run


def check_experiment(params: Params, name: str, longest_review: int) -> ExperimentParams:
    """The experiment's settings, or a UserError naming what is wrong, before any work starts."""
    experiments = params.train.experiments
    if name not in experiments:
        raise UserError(f"params.yaml: train.experiments has no {name!r}; defined: {', '.join(experiments)}")
    experiment = experiments[name]
    key = f"params.yaml: train.experiments.{name}"
    if experiment.architecture not in NAMES:
        raise UserError(f"{key}.architecture = {experiment.architecture!r}: must be one of {', '.join(NAMES)}")
    if experiment.maxlen > longest_review:
        raise UserError(
            f"{key}.maxlen = {experiment.maxlen}: must be <= {longest_review}, the longest prepared training "
            "review (data/prepared/stats.json); longer would only add padding"
        )
    return experiment


def check_seed(params: Params, seed: int) -> int:
    if seed not in params.base.seeds:
        raise UserError(f"--seed {seed}: not in params.yaml base.seeds {list(params.base.seeds)}; "
                        "add it there so evaluate and report see this replicate")
    return seed


def hyperparameters(params: Params, name: str, experiment: ExperimentParams, seed: int,
                    shared: dict | None = None) -> dict:
    """Every effective setting of one run, as logged to MLflow; ``shared`` replaces the shared train.* keys
    a study searched (batch_size, learning_rate) for a tuned configuration."""
    train = params.train
    shared = shared or {}
    return {
        "experiment": name,
        **vars(experiment),
        "num_words": vocabulary_size(params, vars(experiment)),
        "batch_size": shared.get("batch_size", train.batch_size),
        "optimizer": train.optimizer,
        "learning_rate": shared.get("learning_rate", train.learning_rate),
        "padding": train.padding,
        "truncating": train.truncating,
        "bucketing": bucketed(train.bucketing, experiment.architecture),
        "loss": "binary_crossentropy",
        "seed": seed,
        "keep": train.keep,
        "patience": train.patience if train.keep == "best" else 0,
        "deterministic": params.base.deterministic,
        "val_fraction": params.prepare.val_fraction,
    }


def history_csv(rows: list[dict]) -> str:
    from pipeline.training import HISTORY_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def gradients_csv(snapshots: dict[str, list[float]]) -> str:
    """steps_before_end, then the mean gradient norm per step of each snapshot (init, epoch1, final)."""
    maxlen = len(next(iter(snapshots.values())))
    lines = ["steps_before_end," + ",".join(snapshots)]
    for step in range(maxlen):
        lines.append(f"{maxlen - 1 - step}," + ",".join(f"{values[step]:.6g}" for values in snapshots.values()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Train one replicate: an experiment of params.yaml "
                                                 "train.experiments with one seed of base.seeds.")
    parser.add_argument("--experiment", required=True, help="name under train.experiments, e.g. lstm")
    parser.add_argument("--seed", required=True, type=int, help="one of base.seeds, e.g. 1")
    arguments = parser.parse_args()
    params = config.load()
    stats = load_stats()
    experiment = check_experiment(params, arguments.experiment, stats["splits"]["train"]["length"]["max"])
    train_replicate(params, arguments.experiment, experiment, check_seed(params, arguments.seed))


def train_replicate(params: Params, name: str, experiment: ExperimentParams, seed: int, *,
                    shared: dict | None = None, tags: dict | None = None) -> None:
    """Train, probe and save one replicate; record it in its MLflow run. Inputs are checked already.

    The confirm stage trains a study's best configuration this way: ``experiment`` holds its experiment
    settings, ``shared`` the shared ones it searched (:func:`hyperparameters`), ``tags`` its provenance."""
    import mlflow
    import numpy as np

    from pipeline import probes, provenance, tracking
    from pipeline.data import load_split, pad
    from pipeline.training import build_model, fit_model, seed_everything, summarize

    settings = hyperparameters(params, name, experiment, seed, shared)
    seed_everything(seed, params.base.deterministic)
    train, val = load_split("train"), load_split("val")
    probe = val.take(probes.gradient_rows(val, experiment.maxlen, params.evaluate.probe_reviews))
    probe = probe.capped(settings["num_words"])  # as fit_model caps the splits
    probe_x = pad(probe, experiment.maxlen, params.train.padding, params.train.truncating)
    probe_y = probe.labels.astype("float32")
    uri = tracking.start(tracking.project_root(Path.cwd()), os.environ.get("MLFLOW_TRACKING_URI"))
    # lab.experiment groups the replicates: `mlflow ui` can group or filter runs by this tag.
    tags = {"lab.experiment": name, **(tags or {})}
    tags = provenance.run_tags(Path.cwd(), stage=tags.pop("stage", f"train@{name}-{seed}"), seed=seed) | tags
    print(f"training {name} seed {seed} ({experiment.architecture}, maxlen {experiment.maxlen}, "
          f"{experiment.epochs} epochs, keep {params.train.keep}) on {len(train):,} reviews, validating on "
          f"{len(val):,}; MLflow: {uri}", flush=True)
    started = time.perf_counter()
    with tracking.started_run(run_name=f"{name} seed {seed}", tags=tags) as active:
        mlflow.log_params(settings)
        tracking.log_inputs(**provenance.split_datasets(Path.cwd(), {"train": "training", "val": "validation"}))
        model = build_model(params, experiment.architecture, settings)
        # Claim 5: the gradient reaching each input step, before training, after epoch 1 and at the end.
        gradients = {"init": probes.input_gradient_norms(model, probe_x, probe_y)}

        def after_epoch(row: dict) -> None:
            if row["epoch"] == 1:
                gradients["epoch1"] = probes.input_gradient_norms(model, probe_x, probe_y)

        rows = fit_model(params, experiment.architecture, model, settings, train, val, seed, on_epoch=after_epoch)
        gradients["final"] = probes.input_gradient_norms(model, probe_x, probe_y)  # the kept weights
        metrics = {"experiment": name, "seed": seed} | summarize(rows, model.count_params(), params.train.keep)
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "seed"
                            and k.startswith(("best/", "last/", "kept/", "total/", "parameters"))})
        mlflow.log_metrics({f"gradient_reach/{k}": probes.reach(v) for k, v in gradients.items()})

        # Outputs appear only after training succeeded, all together (write_outputs).
        saved = model_path(name, seed)
        partial = staged_copy(saved, model.save)
        write_outputs({train_history_path(name, seed): history_csv(rows),
                       train_metrics_path(name, seed): tracking.dumps(metrics),
                       train_gradients_path(name, seed): gradients_csv({k: list(v) for k, v in gradients.items()})},
                      staged={saved: partial})
        outputs_written()
        mlflow.set_tag("model.sha256", provenance.file_sha256(saved))  # how evaluate finds this run
        example = val.take(np.arange(2)).capped(settings["num_words"])
        log_artifacts(model, rows, name, seed, pad(example, experiment.maxlen, params.train.padding,
                                                   params.train.truncating))
    print(f"{name} seed {seed}: kept epoch {metrics['kept/epoch']}, val/accuracy {metrics['val/accuracy']:.4f} "
          f"(last epoch {metrics['last/val/accuracy']:.4f}), {metrics['epoch/seconds']:.1f} s/epoch, "
          f"{time.perf_counter() - started:.0f} s in all; MLflow run {active.info.run_id}")


def log_artifacts(model, rows: list[dict], name: str, seed: int, example) -> None:
    """The run's files beside its metrics: history, gradients, learning curves, summary, the model."""
    import mlflow

    from pipeline import figures, tracking

    mlflow.log_artifact(str(train_history_path(name, seed)))
    mlflow.log_artifact(str(train_gradients_path(name, seed)))
    mlflow.log_figure(figures.learning_curves(rows, f"{name} seed {seed}"), "learning_curves.png")
    summary: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: summary.append(line))
    tracking.log_text_artifacts({"model_summary.txt": "\n".join(summary) + "\n"})
    tracking.log_model(model, example)

if __name__ == "__main__":
    run(main, end_process=True)
