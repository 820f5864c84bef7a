"""confirm stage: retrain a study's best configuration with one replicate seed, as the train stage trains an
experiment, so that a tuned model is a distribution over seeds like every default model.

Reads   reports/tuning/<architecture>.json (the study's best_params), data/prepared/ (train and val splits,
        stats.json), params base.deterministic, prepare.num_words, the shared train.* keys,
        train.experiments.<architecture> (every setting the study did not search), evaluate.probe_reviews
Writes  models/<architecture>-tuned/seed<seed>.keras, metrics/train/<architecture>-tuned/seed<seed>.json and
        seed<seed>-gradients.csv, plots/train/<architecture>-tuned/seed<seed>.csv; one MLflow run named
        "<architecture>-tuned seed <seed>", tagged lab.experiment=<architecture>-tuned and lab.study=<study>
Run     python -m pipeline.confirm --architecture lstm --seed 1   (or: dvc repro confirm@lstm-1)

Why: the best trial's validation accuracy is the maximum over a study's trials on one validation split,
with one seed; it overstates what the configuration gives (the winner's curse). Retrained with every
seed of base.seeds and scored once on the test split by evaluate, the configuration is judged like the
defaults, and the report's "does tuning help" verdicts compare the two distributions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from pipeline import config
from pipeline.config import TUNABLE, ExperimentParams, Params
from pipeline.data import load_stats
from pipeline.paths import tuned_name, tuning_report_path
from pipeline.stage import UserError, run
from pipeline.train import check_experiment, check_seed, train_replicate

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
    stats = load_stats(params.prepare.num_words)
    seed = check_seed(params, arguments.seed)
    architecture = arguments.architecture
    experiment, shared, study = best_configuration(params, architecture, stats["splits"]["train"]["length"]["max"])
    train_replicate(params, tuned_name(architecture), experiment, seed, shared=shared,
                    tags={"stage": f"confirm@{architecture}-{seed}", "lab.study": study})


if __name__ == "__main__":
    run(main)
