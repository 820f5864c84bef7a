"""confirm stage: retrain a study's best configuration with one replicate seed, as the train stage trains an
experiment, so that a tuned model is a distribution over seeds like every default model.

Reads   reports/tuning/<architecture>.json (the study's best_params), data/prepared/ (train and val splits,
        stats.json), params base.deterministic, prepare.num_words, the shared train.* keys,
        train.experiments.<architecture> (every setting the study did not search), evaluate.probe_reviews
Writes  models/<architecture>-tuned/seed<seed>.keras, metrics/train/<architecture>-tuned/seed<seed>.json and
        seed<seed>-gradients.csv, plots/train/<architecture>-tuned/seed<seed>.csv; one MLflow run named
        "<architecture>-tuned seed <seed>", tagged lab.experiment=<architecture>-tuned and lab.study=<study>
Run     python -m pipeline.confirm --architecture lstm --seed 1   (or: dvc repro confirm@lstm-1)

When the best configuration is the default experiment itself (trial 0 won), retraining it with the same seed
would reproduce train@<architecture>-<seed> exactly, so that replicate is reused instead: its files are copied
and the MLflow run names it (tag lab.reused_from), provided a finished run of it logged exactly today's settings
and produced today's model file. Otherwise, or outside DVC without that replicate, it trains.

Why: the best trial's validation accuracy is the maximum over a study's trials on one validation split,
with one seed; it overstates what the configuration gives (the winner's curse). Retrained with every
seed of base.seeds and scored once on the test split by evaluate, the configuration is judged like the
defaults, and the report's "does tuning help" verdicts compare the two distributions.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

from pipeline import config
from pipeline.config import TUNABLE, ExperimentParams, Params, vocabulary_size
from pipeline.data import load_stats
from pipeline.paths import (
    model_path,
    staged_copy,
    train_gradients_path,
    train_history_path,
    train_metrics_path,
    tuned_name,
    tuning_report_path,
    write_outputs,
)
from pipeline.stage import UserError, outputs_written, run
from pipeline.train import check_experiment, check_seed, hyperparameters, log_artifacts, train_replicate

REPLICATE_FILES = (model_path, train_metrics_path, train_history_path, train_gradients_path)

SHARED = ("batch_size", "learning_rate")  # searched settings that are shared train.* keys, not experiment ones


def best_configuration(params: Params, architecture: str, longest_review: int) -> tuple[ExperimentParams, dict, str]:
    """The study's best configuration: experiment settings, searched shared settings, and the study's name."""
    if architecture not in params.tune.architectures:
        raise UserError(f"--architecture {architecture!r}: not in params.yaml tune.architectures "
                        f"{list(params.tune.architectures)}")
    default = check_experiment(params, architecture, longest_review)
    path = tuning_report_path(architecture)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        best, study = summary["best_params"], summary["study"]
    except FileNotFoundError:
        raise UserError(f"{path}: missing; run `dvc repro tune@{architecture}` first") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a study summary with best_params and study (rerun `dvc repro -f "
                        f"tune@{architecture}`)") from None
    if not isinstance(best, dict) or not set(best) <= set(TUNABLE):
        raise UserError(f"{path}: best_params must map settings among {', '.join(TUNABLE)} to values, got {best!r}")
    experiment = dataclasses.replace(default, **{k: v for k, v in best.items() if k not in SHARED})
    if experiment.maxlen > longest_review:
        raise UserError(f"{path}: best maxlen {experiment.maxlen} is longer than the longest prepared training "
                        f"review ({longest_review}): the study ran on other data; rerun "
                        f"`dvc repro tune@{architecture}`")
    return experiment, {k: best[k] for k in SHARED if k in best}, study


def main() -> None:
    parser = argparse.ArgumentParser(description="Retrain a study's best configuration (reports/tuning/"
                                                 "<architecture>.json) with one seed of base.seeds, as a replicate "
                                                 "of the model <architecture>-tuned.")
    parser.add_argument("--architecture", required=True, help="one of tune.architectures, e.g. lstm")
    parser.add_argument("--seed", required=True, type=int, help="one of base.seeds, e.g. 1")
    arguments = parser.parse_args()
    params = config.load()
    stats = load_stats()
    seed = check_seed(params, arguments.seed)
    architecture = arguments.architecture
    experiment, shared, study = best_configuration(params, architecture, stats["splits"]["train"]["length"]["max"])
    tags = {"stage": f"confirm@{architecture}-{seed}", "lab.study": study}
    source = default_replicate(params, architecture, experiment, shared, seed)
    if source is None:
        train_replicate(params, tuned_name(architecture), experiment, seed, shared=shared, tags=tags)
    else:
        reuse(params, architecture, experiment, seed, source, tags)


def default_replicate(params: Params, architecture: str, experiment: ExperimentParams, shared: dict, seed: int):
    """The finished MLflow run of train@<architecture>-<seed> when the best configuration is that default
    experiment and the run logged exactly the settings a retraining would have and made today's model file."""
    import mlflow

    from pipeline import provenance, tracking

    def resolved(e: ExperimentParams) -> ExperimentParams:  # num_words left out means prepare.num_words
        return dataclasses.replace(e, num_words=vocabulary_size(params, vars(e)))

    if resolved(experiment) != resolved(params.train.experiments[architecture]) or any(
            getattr(params.train, k) != v for k, v in shared.items()):
        return None
    if not all(path(architecture, seed).is_file() for path in REPLICATE_FILES):
        return None
    tracking.start(tracking.project_root(Path.cwd()), os.environ.get("MLFLOW_TRACKING_URI"))
    sha256 = provenance.file_sha256(model_path(architecture, seed))
    found = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list", filter_string=(
        f"tags.`model.sha256` = '{sha256}' and tags.`lab.experiment` = '{architecture}' and status = 'FINISHED'"))
    expected = {k: str(v) for k, v in hyperparameters(params, architecture, experiment, seed).items()}
    return next((r for r in found if r.data.params == expected), None)


def reuse(params: Params, architecture: str, experiment: ExperimentParams, seed: int, source, tags: dict) -> None:
    """The replicate of the default experiment as this seed's replicate of <architecture>-tuned: its files copied
    (all or none), and an MLflow run with its settings, metrics, figures and model, tagged lab.reused_from."""
    import mlflow
    import numpy as np

    from pipeline import provenance, tracking
    from pipeline.data import load_split, pad
    from pipeline.models import load

    name = tuned_name(architecture)
    metrics = json.loads(train_metrics_path(architecture, seed).read_text(encoding="utf-8"))
    metrics |= {"experiment": name, "reused_from": f"train@{architecture}-{seed}"}
    print(f"{name} seed {seed}: the study's best configuration is the default experiment {architecture!r}, so "
          f"train@{architecture}-{seed} (MLflow run {source.info.run_id}) is this replicate; reusing it, not "
          "retraining", flush=True)
    tags = {"lab.experiment": name, "lab.reused_from": source.info.run_id, **tags}
    tags = provenance.run_tags(Path.cwd(), stage=tags.pop("stage"), seed=seed) | tags
    with tracking.started_run(run_name=f"{name} seed {seed}", tags=tags, log_system_metrics=False) as active:
        mlflow.log_params(source.data.params | {"experiment": name})
        history = train_history_path(architecture, seed).read_text("utf-8")
        rows = [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(history))]
        for row in rows:  # the per-epoch metrics, as train@ logged them
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        mlflow.log_metrics({k: v for k, v in source.data.metrics.items() if k.startswith(
            ("best/", "last/", "kept/", "total/", "parameters", "gradient_reach/"))})
        target = model_path(name, seed)
        partial = staged_copy(target, lambda temporary: shutil.copyfile(model_path(architecture, seed), temporary))
        write_outputs({train_history_path(name, seed): history,
                       train_metrics_path(name, seed): tracking.dumps(metrics),
                       train_gradients_path(name, seed): train_gradients_path(architecture, seed).read_text("utf-8")},
                      staged={target: partial})
        outputs_written()
        mlflow.set_tag("model.sha256", provenance.file_sha256(target))  # how evaluate finds this run
        shared = params.train
        example = load_split("val").take(np.arange(2)).capped(vocabulary_size(params, vars(experiment)))
        example = pad(example, experiment.maxlen, shared.padding, shared.truncating)
        log_artifacts(load(target), rows, name, seed, example)  # its model too: one logged model per replicate
    print(f"{name} seed {seed}: kept epoch {metrics['kept/epoch']}, val/accuracy {metrics['val/accuracy']:.4f}, "
          f"copied from train@{architecture}-{seed}; MLflow run {active.info.run_id}")


if __name__ == "__main__":
    run(main, end_process=True)
