"""Optuna studies for the tune stage: the objective and our MLflow bridge.

The objective is thin: sample, then call the same build() and fit() as the train
stage, reporting validation accuracy to the pruner after each epoch through the
one logging callback. The bridge (not the deprecated optuna_integration
MLflowCallback) keeps one parent run per study, continued across reruns, and
one nested run per trial: FINISHED, KILLED with tag optuna.state=PRUNED, or
FAILED. Each trial stores its MLflow run id as a user attribute.

Several workers may share one study: pipeline.workers hands out the trial slots
(exactly ``tune.n_trials`` finished trials) and fails the trials of dead workers;
pipeline.study_summary turns the finished study into the stage's outputs.

The budget is counted in trials, so a study's outputs do not depend on the machine's
speed. ``tune.timeout`` (opt-in, 0 by default) is a safety net: a trial it stops is
*cut*, not pruned: FAIL in Optuna with the user attribute ``cut``, KILLED in MLflow with
tag optuna.state=CUT. It does not count as finished, so its slot runs again on the next
``dvc repro``, and the stage writes nothing until the study has its ``n_trials``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import optuna
import pandas as pd

from pipeline import provenance, study_summary, workers
from pipeline.architectures import bucketed, uses
from pipeline.config import INTEGER_TUNABLE, Params
from pipeline.data import load_split
from pipeline.locks import StoreLock
from pipeline.paths import staged_copy, write_outputs
from pipeline.provenance import file_sha256
from pipeline.stage import UserError, unwinding
from pipeline.tracking import EXPERIMENT, OWNER_TAG, end_killed, log_inputs, owner, started_run
from pipeline.training import build_model, fit_model, kept_row, seed_everything


class _WithoutTraceback(logging.Filter):
    """Optuna logs a trial that ended by Ctrl-C, SIGTERM or the clock with a traceback: keep its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] in (KeyboardInterrupt, workers.TrialCut):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_optuna_tracebacks() -> None:
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _WithoutTraceback) for f in log.filters):
        log.addFilter(_WithoutTraceback())


def _pruner(params: Params, max_epochs: int) -> optuna.pruners.BasePruner:
    warmup = params.tune.warmup_epochs
    if params.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)
    if params.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=max_epochs)
    return optuna.pruners.NopPruner()


def _sample(trial: optuna.Trial, params: Params, defaults: dict, architecture: str) -> dict:
    values = dict(defaults)
    for name, span in params.tune.space.items():
        if not uses(architecture, name):
            continue  # a setting the architecture does not have (dense: units): searching it would waste trials
        if span.choices:
            values[name] = trial.suggest_categorical(name, list(span.choices))
        elif name in INTEGER_TUNABLE:
            values[name] = trial.suggest_int(name, int(span.low), int(span.high), log=span.log)
        else:
            values[name] = trial.suggest_float(name, span.low, span.high, log=span.log)
    return values


def run_study(params: Params, architecture: str, defaults: dict, storage, name: str, *, storage_label: str,
              model_dir: Path, slots: StoreLock | None = None,
              trials_only: bool = False) -> tuple[dict, pd.DataFrame, Path] | None:
    """Run the study until it has ``tune.n_trials`` finished trials; return its summary, its trials
    table and the best trial's model file. ``trials_only``: an extra worker, which only adds
    trials and returns None (the DVC stage's worker writes the outputs)."""
    _quiet_optuna_tracebacks()
    tune = params.tune
    slots = slots or StoreLock("", name)
    study = _open_study(params, architecture, defaults, storage, name, storage_label, slots)
    deadline = time.monotonic() + tune.timeout if tune.timeout else math.inf
    # The same provenance as a training run's, on the study's parent run and every trial's.
    origin = provenance.run_tags(Path.cwd(), stage=f"tune@{architecture}")
    objective = Objective(params, architecture, defaults, study, deadline, origin, model_dir / name)
    parent_id, fresh = _parent_run(study, architecture, slots, origin)
    with started_run(run_id=parent_id):
        if fresh:
            mlflow.log_params({
                "architecture": architecture, "study": name, "storage": storage_label, "n_trials": tune.n_trials,
                "sampler": f"TPESampler(seeded from base.seed {params.base.seed}, "
                           f"{tune.startup_trials} random start-up trials)", "pruner": tune.pruner,
                "warmup_epochs": tune.warmup_epochs,
                "space": {n: r.described() for n, r in tune.space.items()},
            })
        finished = len(study.get_trials(deepcopy=False, states=workers.FINISHED))
        print(f"study {name}: {finished} of {tune.n_trials} trials done; storage {storage_label}", flush=True)
        workers.run_trials(study, storage, slots, objective, tune.n_trials, deadline, seed=f"{params.base.seed}/{name}",
                           startup_trials=tune.startup_trials)
        finished = len(study.get_trials(deepcopy=False, states=workers.FINISHED))
        if finished < tune.n_trials:  # only the clock stops the loop early
            cut = sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("cut"))
            message = (f"study {name}: tune.timeout ({tune.timeout} s) stopped it at {finished} of {tune.n_trials} "
                       f"trials ({cut} cut so far, not counted); run it again to go on where it stopped, or set "
                       "tune.timeout: 0 (no limit)")
            if trials_only:
                print(message, flush=True)
                return None
            raise UserError(message + "; nothing written")
        if trials_only:
            return None
        # Every stage worker of the study writes this to the shared parent run: one at a time, under the study's
        # lock (two setting the same tag at once collided on PostgreSQL's unique key, and the check before
        # log_params is only safe with the lock held).
        with slots:
            summary, trials = study_summary.summarize(study, tune.n_trials)
            mlflow.log_metrics({"best/val/accuracy": summary["best_value"],
                                "pruning/epoch_ratio": summary["epoch_ratio"]})
            if not any(key.startswith("best_") for key in mlflow.get_run(parent_id).data.params):  # params are final
                mlflow.log_params({f"best_{k}": v for k, v in summary["best_params"].items()})
            study_summary.log_figures(study)
            mlflow.log_text(trials.to_csv(index=False), "trials.csv")
            # The evaluate stage finds this run (and the best trial's) by the tuned model's hash.
            best_model = study_summary.best_model(study, model_dir / name)
            mlflow.set_tag("model.sha256", file_sha256(best_model))
    return summary, trials, best_model


def _open_study(params: Params, architecture: str, defaults: dict, storage, name: str, storage_label: str,
                slots: StoreLock) -> optuna.Study:
    """The study, created or continued; trials of dead workers failed (so they neither count nor block
    it) and the default experiment enqueued first, once (again only if its worker died)."""
    tune = params.tune
    epochs = tune.space.get("epochs")
    max_epochs = defaults["epochs"] if epochs is None else int(max(epochs.choices) if epochs.choices else epochs.high)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    pruner=_pruner(params, max_epochs))
    except Exception as error:
        raise UserError(f"Optuna storage {storage_label}: cannot open study {name} ({error})") from None
    with slots:
        if study.metric_names is None:  # optuna-dashboard then says "val_accuracy", not "Objective 0"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(["val_accuracy"])
            study.set_user_attr("name", f"{architecture}, then the first 10 hex digits of a SHA-256 over the search "
                                        "space, the default experiment, train.*, num_words, base.seed, the pruner "
                                        "(and base.deterministic when off): a changed search starts a new study, an "
                                        "unchanged one continues")
        workers.fail_dead_trials(study, storage)
        searched = [n for n in tune.space if uses(architecture, n)]
        if not any(t.user_attrs.get("default") and t.state != optuna.trial.TrialState.FAIL
                   for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial({n: defaults[n] for n in searched}, user_attrs={"default": True})
    return study


def _parent_run(study: optuna.Study, architecture: str, slots: StoreLock, origin: dict) -> tuple[str, bool]:
    """The study's one MLflow parent run, made by whichever worker comes first; and whether this one made it."""
    with slots:
        made = None
        if not study.user_attrs.get("mlflow_parent_run_id"):
            made = mlflow.MlflowClient().create_run(
                mlflow.get_experiment_by_name(EXPERIMENT).experiment_id, run_name=f"tune-{architecture}",
                tags=origin | {"optuna.study": study.study_name, OWNER_TAG: owner()}).info.run_id
            study.set_user_attr("mlflow_parent_run_id", made)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    return parent_id, parent_id == made


class Objective:
    """One trial: sample, resolve the settings, train with the train stage's build() and fit(), return
    the kept epoch's validation accuracy. Its MLflow run is :func:`_trial_run`'s business."""

    def __init__(self, params: Params, architecture: str, defaults: dict, study: optuna.Study, deadline: float,
                 origin: dict, model_dir: Path):
        self.params, self.architecture, self.defaults, self.study = params, architecture, defaults, study
        self.deadline, self.origin, self.model_dir = deadline, origin, model_dir
        self.train, self.val = load_split("train"), load_split("val")
        self.bucketing = bucketed(params.train.bucketing, architecture)
        self.datasets = provenance.split_datasets(Path.cwd(), {"train": "training", "val": "validation"})
        model_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("owner", owner())
        values = _sample(trial, self.params, self.defaults, self.architecture)
        seed = self.params.base.seed + trial.number
        keras.backend.clear_session()  # one graph per trial: memory stays flat over a long study
        if keras.backend.backend() == "jax":  # and JAX's compiled steps of earlier trials' models go too
            import jax

            jax.clear_caches()
        seed_everything(seed, self.params.base.deterministic)
        with self._trial_run(trial, values, seed):
            model = build_model(self.params, self.architecture, values)
            rows = fit_model(self.params, self.architecture, model, values, self.train, self.val, seed,
                             on_epoch=self._reporter(trial, values["epochs"]))
            value = kept_row(rows, self.params.train.keep)["val/accuracy"]  # the kept epoch's, as in training
            if value >= _best_value(self.study):
                self._keep_model(trial, model)
            return value

    def _reporter(self, trial: optuna.Trial, epochs: int):
        """After each epoch: tell the pruner, prune, or cut the trial when tune.timeout has passed."""
        def report(row: dict) -> None:
            trial.set_user_attr("epochs_trained", row["epoch"])
            trial.report(row["val/accuracy"], row["epoch"])
            if row["epoch"] == epochs:
                return  # the last epoch: pruning now would save nothing and lose the result
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")
            if time.monotonic() > self.deadline:
                trial.set_user_attr("cut", "tune.timeout")
                mlflow.set_tag("optuna.stop_reason", "tune.timeout")
                raise workers.TrialCut(f"cut by tune.timeout after epoch {row['epoch']}; its slot runs again")
        return report

    def _keep_model(self, trial: optuna.Trial, model: keras.Model) -> None:
        """The best trial so far: its model file here, and in its MLflow run for workers on other hosts."""
        path = self.model_dir / f"trial-{trial.number}.keras"
        write_outputs({}, staged={path: staged_copy(path, model.save)})
        trial.set_user_attr("model_path", str(path))
        mlflow.set_tag("model.sha256", file_sha256(path))
        mlflow.log_artifact(str(path), "model")

    @contextlib.contextmanager
    def _trial_run(self, trial: optuna.Trial, values: dict, seed: int) -> Iterator[None]:
        """The trial's nested MLflow run: FINISHED, KILLED with tag optuna.state PRUNED or CUT, KILLED on
        Ctrl-C or SIGTERM (Optuna fails the trial and the next run redoes its slot), else FAILED."""
        child = mlflow.start_run(run_name=f"{self.architecture}-trial-{trial.number}", nested=True,
                                 log_system_metrics=True,
                                 tags=self.origin | {"optuna.study": self.study.study_name,
                                                     "optuna.trial": str(trial.number), "seed": str(seed),
                                                     OWNER_TAG: owner()})
        trial.set_user_attr("mlflow_run_id", child.info.run_id)
        mlflow.log_params(values | {"architecture": self.architecture, "trial": trial.number,
                                    "bucketing": self.bucketing})
        log_inputs(**self.datasets)
        status = "FAILED"
        try:
            yield
            mlflow.set_tag("optuna.state", "COMPLETE")
            status = "FINISHED"
        except (optuna.TrialPruned, workers.TrialCut) as stopped:
            mlflow.set_tag("optuna.state", "PRUNED" if isinstance(stopped, optuna.TrialPruned) else "CUT")
            status = "KILLED"
            raise
        except KeyboardInterrupt:
            with unwinding():  # no second interrupt can cut this write short
                end_killed()  # retried: every interrupted worker writes to the store at once
            raise
        finally:
            if mlflow.active_run() and mlflow.active_run().info.run_id == child.info.run_id:
                mlflow.end_run(status)


def _best_value(study: optuna.Study) -> float:
    try:
        return study.best_value
    except ValueError:  # no complete trial yet
        return -math.inf


