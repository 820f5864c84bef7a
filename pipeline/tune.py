"""tune stage: one Optuna study per architecture, pruned, resumable, bridged to MLflow.

Reads   data/prepared/ (train and val splits, stats.json), params base.*, prepare.num_words,
        the shared train.* keys, train.experiments.<architecture> (defaults, enqueued as trial 0), tune.*
Writes  models/<architecture>-tuned.keras, reports/tuning/<architecture>.json,
        reports/tuning/<architecture>-trials.csv; the study in optuna.db (or OPTUNA_STORAGE);
        one MLflow parent run per study with one nested run per trial
Run     python -m pipeline.tune --architecture lstm   (or: dvc repro tune@lstm)

Each trial trains through pipeline.training.fit, exactly as the train stage does, and
reports validation accuracy after every epoch to the pruner; the test split is never
read. A study is named after its architecture and a hash of everything that shapes
its results (search space, defaults, shared training keys, seed, pruner), so a changed
space starts a new study and an unchanged one continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from pipeline import config
from pipeline.architectures import NAMES
from pipeline.config import (
    CATEGORICAL_TUNABLE,
    INTEGER_TUNABLE,
    OPTIONAL_SETTINGS,
    TUNABLE,
    Params,
    settings_of,
    tunable_rule,
)
from pipeline.data import load_stats
from pipeline.locks import StoreLock
from pipeline.paths import OPTUNA_DB, TRIAL_MODELS, staged_copy, tuned_model_path, tuning_report_path, write_outputs
from pipeline.stage import UserError, run


def check_space(params: Params, architecture: str, longest_review: int) -> dict:
    """The architecture's default settings, after checking the search space against them."""
    if architecture not in NAMES:
        raise UserError(f"tune: architecture {architecture!r} unknown; must be one of {', '.join(NAMES)}")
    if architecture not in params.train.experiments:
        raise UserError(f"params.yaml: tune.architectures names {architecture!r}, but train.experiments has no "
                        f"{architecture!r} entry to take its default settings from")
    defaults = settings_of(params, architecture)
    for name, span in params.tune.space.items():
        key = f"params.yaml: tune.space.{name}"
        if name in CATEGORICAL_TUNABLE or span.choices:
            _check_choices(key, name, span)
            continue
        if span.low is None or span.high is None:
            raise UserError(f"{key}: needs low and high (a range), e.g. {{low: 1, high: 10}}")
        if not span.low < span.high:
            raise UserError(f"{key}: low = {span.low:g} must be below high = {span.high:g}")
        if name in INTEGER_TUNABLE and not (span.low.is_integer() and span.high.is_integer()):
            raise UserError(f"{key}: {name} takes integers, got low = {span.low:g}, high = {span.high:g}")
        rule = tunable_rule(name)  # the range the setting has in train.*: a search stays inside it
        ends = (int(span.low), int(span.high)) if name in INTEGER_TUNABLE else (span.low, span.high)
        if not all(rule.ok(end) for end in ends):
            raise UserError(f"{key}: range {span.low:g}..{span.high:g}: each end must be {rule.allowed}")
        if name == "maxlen" and span.high > longest_review:
            raise UserError(f"{key}: range {span.low:g}..{span.high:g} must lie within 1..{longest_review} "
                            "(the longest training review, in words)")
        if span.log and span.low <= 0:
            raise UserError(f"{key}: log = true needs low > 0, got {span.low:g}")
    # The default experiment's value of every tunable setting it sets (optional ones at their default are left
    # out), and of every searched one: the first trial. A study's name hashes these, so the studies from before
    # batch_size and the optional settings could be searched keep their names.
    fallback = OPTIONAL_SETTINGS | {"batch_size": params.train.batch_size, "num_words": params.prepare.num_words}
    chosen = {name: defaults.get(name, fallback.get(name)) for name in TUNABLE
              if name in defaults or name in params.tune.space}
    for name, span in params.tune.space.items():
        if span.choices and chosen[name] not in span.choices:
            raise UserError(f"params.yaml: tune.space.{name}: choices {list(span.choices)} must include the default "
                            f"experiment's {name} = {chosen[name]!r} (the first trial is the default experiment)")
    return chosen


def _check_choices(key: str, name: str, span) -> None:
    """A categorical setting is searched over a list of its allowed values; a range has no choices."""
    rule = tunable_rule(name)
    if not span.choices:
        example = "[false, true]" if rule.kind is bool else "[" + rule.allowed.removeprefix("one of ") + "]"
        raise UserError(f"{key}: {name} is searched over choices, e.g. {{choices: {example}}}")
    if span.low is not None or span.high is not None:
        raise UserError(f"{key}: give either choices or low and high, not both")
    for value in span.choices:
        kind_ok = isinstance(value, bool) if rule.kind is bool else (
            not isinstance(value, bool) and isinstance(value, int | float if rule.kind is float else rule.kind))
        if not kind_ok or not rule.ok(value):
            raise UserError(f"{key}: choice {value!r}: each choice must be {rule.allowed}")


def study_name(params: Params, architecture: str, defaults: dict) -> str:
    """Stable per architecture and everything that shapes the results."""
    import hashlib

    shape = {
        "space": {n: r.described() for n, r in sorted(params.tune.space.items())},
        "defaults": defaults,
        "train": {k: v for k, v in vars(params.train).items() if k != "experiments"},
        "num_words": params.prepare.num_words,
        "seed": params.base.seed,
        "pruner": [params.tune.pruner, params.tune.warmup_epochs],
    }
    if params.tune.startup_trials != 10:  # Optuna's default, which every study before this setting used
        shape["startup_trials"] = params.tune.startup_trials
    if not params.base.deterministic:  # added later, so only when off: the default studies keep their names
        shape["deterministic"] = False
    # The Keras backends train different optimisers for the embedding (docs/results.md): trials of another
    # backend are another study. Only when not JAX, the default, so the committed studies keep their names.
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        shape["backend"] = os.environ["KERAS_BACKEND"]
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{architecture}-{digest}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Tune one architecture with Optuna (tune.* in params.yaml).")
    parser.add_argument("--architecture", required=True, help="dense, simplernn, lstm or gru")
    parser.add_argument("--trials-only", action="store_true",
                        help="an extra worker: add trials to the shared study (OPTUNA_STORAGE) and write no outputs; "
                             "the DVC stage (dvc repro tune@<architecture>) writes them")
    arguments = parser.parse_args()
    architecture = arguments.architecture
    params = config.load()
    stats = load_stats()
    defaults = check_space(params, architecture, stats["splits"]["train"]["length"]["max"])

    from pipeline import studies, tracking, workers

    root = tracking.project_root(Path.cwd())
    storage_url = os.environ.get("OPTUNA_STORAGE") or f"sqlite:///{root / OPTUNA_DB}"
    storage = workers.open_storage(storage_url, explicit="OPTUNA_STORAGE" in os.environ,
                                  heartbeat=params.tune.heartbeat)
    tracking.start(root, os.environ.get("MLFLOW_TRACKING_URI"))
    started = time.perf_counter()
    name = study_name(params, architecture, defaults)
    result = studies.run_study(
        params, architecture, defaults, storage, name, storage_label=tracking.redact(storage_url),
        model_dir=root / TRIAL_MODELS, slots=StoreLock(storage_url, name, getattr(storage, "engine", None)),
        trials_only=arguments.trials_only,
    )
    if result is None:
        print(f"{architecture}: study {name} has its {params.tune.n_trials} trials; this worker wrote no outputs "
              f"(dvc repro tune@{architecture} writes them)")
        return
    summary, trials, best_model = result
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    # The tuned model and both reports, all or none.
    copy = staged_copy(tuned_model_path(architecture), lambda temporary: shutil.copyfile(best_model, temporary))
    write_outputs({tuning_report_path(architecture): json.dumps(summary, indent=2, sort_keys=True) + "\n",
                   tuning_report_path(architecture, "-trials.csv"): trials.to_csv(index=False)},
                  staged={tuned_model_path(architecture): copy})
    print(f"{architecture}: best val/accuracy {summary['best_value']:.4f} (trial {summary['best_trial']}); "
          f"{summary['trials']['complete']} complete, {summary['trials']['pruned']} pruned, "
          f"{summary['trials']['failed']} failed, {summary['trials']['cut']} cut by the clock; "
          f"epochs {summary['epochs_trained']} of {summary['epochs_unpruned']} unpruned; "
          f"{summary['epochs_saved_by_patience']} more saved by train.patience in complete trials")


if __name__ == "__main__":
    run(main, end_process=True)
