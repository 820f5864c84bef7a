"""train stage: fit one named experiment and record it in MLflow.

Reads   data/prepared/ (train and val splits, stats.json),
        params base.*, prepare.num_words, train.* shared keys and train.experiments.<name>
Writes  models/<name>.keras, metrics/train/<name>.json (DVC metrics),
        plots/train/<name>.csv (per-epoch history, DVC plots); one MLflow run
Run     python -m pipeline.train --experiment lstm   (or: dvc repro train@lstm)

The test split is not read here: it is used once, in the evaluate stage.
The saved model is the one after the last epoch, as in the tutorial; the
metrics file also records the best validation epoch.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path

from pipeline import config
from pipeline.cli import UserError, run
from pipeline.config import ExperimentParams, Params
from pipeline.data import load_stats
from pipeline.paths import (
    PREPARED_DIR,
    model_path,
    temporary_for,
    train_history_path,
    train_metrics_path,
    write_outputs,
)


def check_experiment(params: Params, name: str, longest_review: int) -> ExperimentParams:
    """The experiment's settings, or a UserError naming what is wrong, before any work starts."""
    from pipeline.models import ARCHITECTURES

    experiments = params.train.experiments
    if name not in experiments:
        raise UserError(f"params.yaml: train.experiments has no {name!r}; defined: {', '.join(experiments)}")
    experiment = experiments[name]
    key = f"params.yaml: train.experiments.{name}"
    if experiment.architecture not in ARCHITECTURES:
        raise UserError(f"{key}.architecture = {experiment.architecture!r}: must be one of {', '.join(ARCHITECTURES)}")
    if experiment.maxlen > longest_review:
        raise UserError(
            f"{key}.maxlen = {experiment.maxlen}: must be <= {longest_review}, the longest prepared training "
            "review (data/prepared/stats.json); longer would only add padding"
        )
    return experiment


def hyperparameters(params: Params, name: str, experiment: ExperimentParams) -> dict:
    """Every effective setting of one run, as logged to MLflow."""
    from pipeline.models import VARIABLE_LENGTH

    train = params.train
    return {
        "experiment": name,
        **vars(experiment),
        "num_words": params.prepare.num_words,
        "batch_size": train.batch_size,
        "optimizer": train.optimizer,
        "learning_rate": train.learning_rate,
        "padding": train.padding,
        "truncating": train.truncating,
        "bucketing": train.bucketing and experiment.architecture in VARIABLE_LENGTH,
        "loss": "binary_crossentropy",
        "seed": params.base.seed,
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


def main() -> None:
    parser = argparse.ArgumentParser(description="Train one experiment from params.yaml train.experiments.")
    parser.add_argument("--experiment", required=True, help="name under train.experiments, e.g. lstm")
    name = parser.parse_args().experiment
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not our progress
    params = config.load()
    stats = load_stats(params.prepare.num_words)
    experiment = check_experiment(params, name, stats["splits"]["train"]["length"]["max"])

    # Heavy imports only once the inputs are known to be good.
    import mlflow

    from pipeline import figures, tracking
    from pipeline.data import load_split, pad
    from pipeline.models import build
    from pipeline.training import fit, seed_everything, summarize

    settings = hyperparameters(params, name, experiment)
    seed_everything(params.base.seed, params.base.deterministic)
    train, val = load_split("train"), load_split("val")
    root = tracking.project_root(Path.cwd())
    uri = tracking.start(root, os.environ.get("MLFLOW_TRACKING_URI"))
    commit, dirty = tracking.git_state(Path.cwd())
    tags = tracking.run_tags(
        commit=commit, dirty=dirty, stage=os.environ.get("DVC_STAGE") or f"train@{name}",
        exp_name=os.environ.get("DVC_EXP_NAME"), data=tracking.data_hash(PREPARED_DIR), seed=params.base.seed,
    )

    print(f"training {name} ({experiment.architecture}, maxlen {experiment.maxlen}, {experiment.epochs} epochs) "
          f"on {len(train):,} reviews, validating on {len(val):,}; MLflow: {uri}", flush=True)
    started = time.perf_counter()
    with tracking.started_run(run_name=name, tags=tags) as active:
        mlflow.log_params(settings)
        model = build(
            experiment.architecture, optimizer=params.train.optimizer, learning_rate=params.train.learning_rate,
            num_words=params.prepare.num_words, embedding_dim=experiment.embedding_dim,
            # Bucketed batches vary in length: the model then takes any length.
            maxlen=None if settings["bucketing"] else experiment.maxlen,
            units=experiment.units, dropout=experiment.dropout,
        )
        rows = fit(
            model, train, val, maxlen=experiment.maxlen, epochs=experiment.epochs,
            batch_size=params.train.batch_size, padding=params.train.padding, truncating=params.train.truncating,
            bucketing=settings["bucketing"], seed=params.base.seed,
        )
        metrics = summarize(rows, model.count_params())
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith(("best/", "total/", "parameters"))})

        # Outputs appear only after training succeeded, all together (write_outputs).
        partial = temporary_for(model_path(name))
        partial.parent.mkdir(parents=True, exist_ok=True)
        try:
            model.save(partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        write_outputs({train_history_path(name): history_csv(rows), train_metrics_path(name): tracking.dumps(metrics)},
                      staged={model_path(name): partial})
        mlflow.set_tag("model.sha256", tracking.file_sha256(model_path(name)))  # how evaluate finds this run

        mlflow.log_artifact(str(train_history_path(name)))
        mlflow.log_figure(figures.learning_curves(rows, name), "learning_curves.png")
        summary: list[str] = []
        model.summary(print_fn=lambda line, *args, **kwargs: summary.append(line))
        tracking.log_text_artifacts({"model_summary.txt": "\n".join(summary) + "\n"})
        tracking.log_model(model, pad(val, experiment.maxlen, params.train.padding, params.train.truncating)[:2])
    print(f"{name}: val/accuracy {metrics['val/accuracy']:.4f} (best {metrics['best/val/accuracy']:.4f} at epoch "
          f"{metrics['best/epoch']}), {metrics['epoch/seconds']:.1f} s/epoch, {time.perf_counter() - started:.0f} s "
          f"in all; MLflow run {active.info.run_id}")


if __name__ == "__main__":
    run(main)
