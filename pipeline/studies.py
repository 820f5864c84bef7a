"""Optuna studies for the tune stage: storage, the objective, and our MLflow bridge.

The objective is thin: sample, then call the same build() and fit() as the train
stage, reporting validation accuracy to the pruner after each epoch through the
one logging callback. The bridge (not the deprecated optuna_integration
MLflowCallback) keeps one parent run per study, continued across reruns, and
one nested run per trial: FINISHED, KILLED with tag optuna.state=PRUNED, or
FAILED. Each trial stores its MLflow run id as a user attribute.

Several workers may share one study (a journal file or PostgreSQL storage). The
study then holds exactly ``tune.n_trials`` finished trials: a worker asks for a
trial only while holding the study's lock (pipeline.locks) and only when
finished plus running trials leave a slot free; when the last slots are taken by
other workers it waits for them. A trial whose worker died is failed (heartbeat,
or its owner process gone on this host) and its slot is run again.

The budget is counted in trials, so a study's outputs do not depend on the machine's
speed. ``tune.timeout`` (opt-in, 0 by default) is a safety net: a trial it stops is
*cut*, not pruned: FAIL in Optuna with the user attribute ``cut``, KILLED in MLflow with
tag optuna.state=CUT. It does not count as finished, so its slot runs again on the next
``dvc repro``, and the stage writes nothing until the study has its ``n_trials``.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import keras
import mlflow
import optuna
import pandas as pd

from pipeline import provenance
from pipeline.cli import UserError, unwinding
from pipeline.config import INTEGER_TUNABLE, Params
from pipeline.data import load_split
from pipeline.figures import plt
from pipeline.locks import StoreLock
from pipeline.models import VARIABLE_LENGTH, build
from pipeline.paths import temporary_for, write_outputs
from pipeline.provenance import file_sha256
from pipeline.tracking import EXPERIMENT, OWNER_TAG, owner, owner_is_dead, started_run
from pipeline.training import fit, kept_row, seed_everything

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class TrialCut(Exception):
    """A trial stopped by ``tune.timeout``: recorded as cut (FAIL plus the ``cut`` attribute), never as pruned."""


class _WithoutTraceback(logging.Filter):
    """Optuna logs a trial that ended by Ctrl-C, SIGTERM or the clock with a traceback: keep its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] in (KeyboardInterrupt, TrialCut):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_optuna_tracebacks() -> None:
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _WithoutTraceback) for f in log.filters):
        log.addFilter(_WithoutTraceback())


def open_storage(url: str, explicit: bool, heartbeat: int = 30):
    """An Optuna storage for ``url``: an SQLAlchemy URL, or journal:<path> for a journal file."""
    from pipeline.tracking import redact

    where = f"OPTUNA_STORAGE = {redact(url)!r}" if explicit else f"Optuna storage {url}"
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        # A trial whose worker died (kill -9, lost host) is failed after 3 missed heartbeats.
        # Two workers creating the tables of a new database at once would break it: one at a time.
        with StoreLock(url, "optuna-store-init"):
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=3 * heartbeat)
    except Exception as error:  # SQLAlchemy, drivers and Optuna raise many kinds for a bad URL
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"{where}: unusable ({reason}); use an Optuna storage URL such as "
                        "sqlite:///optuna.db or postgresql://user@host/db, or journal:/path/to/file.log") from None


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
        if name == "units" and architecture not in VARIABLE_LENGTH:
            continue  # the dense baseline has no recurrent units: searching them would waste trials
        if name in INTEGER_TUNABLE:
            values[name] = trial.suggest_int(name, int(span.low), int(span.high), log=span.log)
        else:
            values[name] = trial.suggest_float(name, span.low, span.high, log=span.log)
    return values


def _fail_dead_trials(study: optuna.Study, storage) -> None:
    """Fail the RUNNING trials whose worker died, and mark their MLflow runs KILLED.

    RDB storages know it from missed heartbeats (any host); for every storage, a trial
    whose owner process on this host is gone is failed at once (journal files have no
    heartbeat).
    """
    states = optuna.trial.TrialState
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        if owner_is_dead(trial.user_attrs.get("owner", "")):
            storage.set_trial_state_values(trial._trial_id, states.FAIL)  # no public API for another's trial
            print(f"study {study.study_name}: trial {trial.number} lost its worker ({trial.user_attrs['owner']}); "
                  "failed, its slot is run again", flush=True)
    client = mlflow.MlflowClient()
    for trial in study.get_trials(deepcopy=False, states=(states.FAIL,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            try:
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, "KILLED")
            except mlflow.exceptions.MlflowException:
                pass  # the run lives in another store


def run_study(params: Params, architecture: str, defaults: dict, storage, name: str, *, storage_label: str,
              model_dir: Path, slots: StoreLock | None = None,
              trials_only: bool = False) -> tuple[dict, pd.DataFrame, Path] | None:
    """Run the study until it has ``tune.n_trials`` finished trials; return its summary, its trials
    table and the best trial's model file. ``trials_only``: an extra worker, which only adds
    trials and returns None (the DVC stage's worker writes the outputs)."""
    _quiet_optuna_tracebacks()
    tune, train_params = params.tune, params.train
    max_epochs = int(tune.space["epochs"].high) if "epochs" in tune.space else defaults["epochs"]
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            pruner=_pruner(params, max_epochs),
        )
    except Exception as error:
        raise UserError(f"Optuna storage {storage_label}: cannot open study {name} ({error})") from None
    slots = slots or StoreLock("", name)
    # Trials of workers that died are failed first, so they neither count nor block the study.
    slots.acquire()
    try:
        if study.metric_names is None:  # optuna-dashboard then says "val_accuracy", not "Objective 0"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(["val_accuracy"])
            study.set_user_attr("name", f"{architecture}, then the first 10 hex digits of a SHA-256 over the search "
                                        "space, the default experiment, train.*, num_words, base.seed and the pruner: "
                                        "a changed search starts a new study, an unchanged one continues")
        _fail_dead_trials(study, storage)
        # The default experiment goes first, once; again only if its worker died (a FAIL trial).
        searched = [n for n in tune.space if n != "units" or architecture in VARIABLE_LENGTH]
        if not any(t.user_attrs.get("default") and t.state != optuna.trial.TrialState.FAIL
                   for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial({n: defaults[n] for n in searched}, user_attrs={"default": True})
    finally:
        slots.release()
    train, val = load_split("train"), load_split("val")
    bucketing = train_params.bucketing and architecture in VARIABLE_LENGTH
    deadline = time.monotonic() + tune.timeout if tune.timeout else math.inf
    # The same provenance as a training run's, on the study's parent run and every trial's.
    origin = provenance.run_tags(Path.cwd(), stage=f"tune@{architecture}")
    datasets = provenance.split_datasets(Path.cwd(), {"train": "training", "val": "validation"})
    (model_dir / name).mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> float:
        slots.release()  # the trial exists now: other workers may ask for theirs
        trial.set_user_attr("owner", owner())
        values = _sample(trial, params, defaults, architecture)
        keras.backend.clear_session()  # one graph per trial: memory stays flat over a long study
        seed_everything(params.base.seed + trial.number, params.base.deterministic)
        child = mlflow.start_run(run_name=f"{architecture}-trial-{trial.number}", nested=True, log_system_metrics=True,
                                 tags=origin | {"optuna.study": name, "optuna.trial": str(trial.number),
                                                "seed": str(params.base.seed + trial.number), OWNER_TAG: owner()})
        trial.set_user_attr("mlflow_run_id", child.info.run_id)
        mlflow.log_params(values | {"architecture": architecture, "trial": trial.number, "bucketing": bucketing})
        mlflow.log_inputs(**datasets)
        status = "FAILED"

        def report(row: dict) -> None:
            trial.set_user_attr("epochs_trained", row["epoch"])
            trial.report(row["val/accuracy"], row["epoch"])
            if row["epoch"] == values["epochs"]:
                return  # the last epoch: pruning now would save nothing and lose the result
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")
            if time.monotonic() > deadline:
                trial.set_user_attr("cut", "tune.timeout")
                mlflow.set_tag("optuna.stop_reason", "tune.timeout")
                raise TrialCut(f"cut by tune.timeout after epoch {row['epoch']}; its slot runs again")

        try:
            model = build(architecture, optimizer=train_params.optimizer, learning_rate=values["learning_rate"],
                          num_words=params.prepare.num_words, maxlen=None if bucketing else values["maxlen"],
                          embedding_dim=values["embedding_dim"], units=values["units"], dropout=values["dropout"])
            rows = fit(model, train, val, maxlen=values["maxlen"], epochs=values["epochs"],
                       batch_size=train_params.batch_size, padding=train_params.padding,
                       truncating=train_params.truncating, bucketing=bucketing, seed=params.base.seed + trial.number,
                       keep=train_params.keep, on_epoch=report)
            value = kept_row(rows, train_params.keep)["val/accuracy"]  # the kept epoch's, as in training
            if value >= _best_value(study):
                path = model_dir / name / f"trial-{trial.number}.keras"
                write_outputs({}, staged={path: _saved(model, temporary_for(path))})
                trial.set_user_attr("model_path", str(path))
                mlflow.set_tag("model.sha256", file_sha256(path))
                # Also in the trial's run: a worker on another host can fetch it through the tracking server.
                mlflow.log_artifact(str(path), "model")
            mlflow.set_tag("optuna.state", "COMPLETE")
            status = "FINISHED"
            return value
        except optuna.TrialPruned:
            mlflow.set_tag("optuna.state", "PRUNED")
            status = "KILLED"
            raise
        except TrialCut:
            mlflow.set_tag("optuna.state", "CUT")
            status = "KILLED"
            raise
        except KeyboardInterrupt:
            status = "INTERRUPTED"  # Ctrl-C or SIGTERM; Optuna fails the trial and the next run redoes its slot
            raise
        finally:
            if status == "INTERRUPTED":
                with unwinding():  # no second interrupt can cut this write short
                    mlflow.end_run("KILLED")
            else:
                mlflow.end_run(status)

    # One parent run per study, whichever worker comes first makes it.
    slots.acquire()
    try:
        parent_id = study.user_attrs.get("mlflow_parent_run_id")
        if not parent_id:
            created = mlflow.MlflowClient().create_run(
                mlflow.get_experiment_by_name(EXPERIMENT).experiment_id, run_name=f"tune-{architecture}",
                tags=origin | {"optuna.study": name, OWNER_TAG: owner()})
            study.set_user_attr("mlflow_parent_run_id", created.info.run_id)
    finally:
        slots.release()
    fresh = study.user_attrs.get("mlflow_parent_run_id") != parent_id
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    with started_run(run_id=parent_id):
        if fresh:
            mlflow.log_params({
                "architecture": architecture, "study": name, "storage": storage_label, "n_trials": tune.n_trials,
                "sampler": f"TPESampler(seeded from base.seed {params.base.seed})", "pruner": tune.pruner,
                "warmup_epochs": tune.warmup_epochs,
                "space": {n: vars(r) for n, r in tune.space.items()},
            })
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print(f"study {name}: {finished} of {tune.n_trials} trials done; storage {storage_label}", flush=True)
        _run_trials(study, storage, slots, objective, tune.n_trials, deadline, seed=f"{params.base.seed}/{name}")
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
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
        summary, trials = _summarize(study, tune.n_trials)
        mlflow.log_metrics({"best/val/accuracy": summary["best_value"], "pruning/epoch_ratio": summary["epoch_ratio"]})
        if not any(key.startswith("best_") for key in mlflow.get_run(parent_id).data.params):  # params are final
            mlflow.log_params({f"best_{k}": v for k, v in summary["best_params"].items()})
        _log_figures(study)
        mlflow.log_text(trials.to_csv(index=False), "trials.csv")
        # The evaluate stage finds this run (and the best trial's) by the tuned model's hash.
        best_model = _best_model(study, model_dir / name)
        mlflow.set_tag("model.sha256", file_sha256(best_model))
    return summary, trials, best_model


def _run_trials(study: optuna.Study, storage, slots: StoreLock, objective, n_trials: int, deadline: float,
                seed: str) -> None:
    """Run trials until the study has ``n_trials`` finished ones, sharing the slots with other workers.

    The sampler is seeded per trial from ``seed`` and the number of trials before it:
    reproducible for one worker, and neither two architectures, two workers nor a
    resumed run replay the same random start-up points.
    """
    states = optuna.trial.TrialState
    said = 0.0
    while time.monotonic() < deadline:
        slots.acquire()
        try:
            _fail_dead_trials(study, storage)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            running = sum(t.state == states.RUNNING for t in trials)
            if finished >= n_trials:
                return
            if finished + running < n_trials:
                # Asks for the trial while the lock is held; the objective releases it first thing.
                study.sampler = optuna.samplers.TPESampler(seed=zlib.crc32(f"{seed}/{len(trials)}".encode()))
                study.optimize(objective, n_trials=1, gc_after_trial=True, catch=(TrialCut,))
                continue
        finally:
            slots.release()
        # Every slot left is a trial running in another worker: wait for it (or for that worker to die).
        if time.monotonic() - said > 30:
            print(f"study {study.study_name}: {finished} of {n_trials} trials done, {running} running in other "
                  "workers; waiting for them", flush=True)
            said = time.monotonic()
        time.sleep(2)


def _saved(model: keras.Model, path: Path) -> Path:
    try:
        model.save(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _best_value(study: optuna.Study) -> float:
    try:
        return study.best_value
    except ValueError:  # no complete trial yet
        return -math.inf


def _summarize(study: optuna.Study, n_trials: int) -> tuple[dict, pd.DataFrame]:
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    if not any(t.state == states.COMPLETE for t in trials):
        raise UserError(f"study {study.study_name}: no trial completed (every one was pruned or failed)")
    trained = sum(t.user_attrs.get("epochs_trained", 0) for t in finished)
    unpruned = sum(t.params.get("epochs", t.user_attrs.get("epochs_trained", 0)) for t in finished)
    default = next((t for t in trials if t.user_attrs.get("default") and t.state == states.COMPLETE), None)
    summary = {
        "study": study.study_name,
        "best_trial": study.best_trial.number,
        "best_value": study.best_value,
        "best_params": study.best_params,
        "default_value": default.value if default else None,
        "n_trials": n_trials,
        "trials": {
            "complete": sum(t.state == states.COMPLETE for t in trials),
            "pruned": sum(t.state == states.PRUNED for t in trials),
            "failed": sum(t.state == states.FAIL and not t.user_attrs.get("cut") for t in trials),
            "cut": sum(t.state == states.FAIL and bool(t.user_attrs.get("cut")) for t in trials),
        },
        "epochs_trained": trained,
        "epochs_unpruned": unpruned,
        "epoch_ratio": round(trained / unpruned, 4) if unpruned else 1.0,
        "trial_seconds": round(sum(t.duration.total_seconds() for t in finished if t.duration), 1),
    }
    table = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    # A study with a named metric calls the column value_<name>: the table keeps its one name, "value".
    table = table.rename(columns={f"value_{n}": "value" for n in study.metric_names or []})
    # Where this host keeps trial models says nothing about the results: keep it out of the report.
    table = table.drop(columns=["user_attrs_model_path"], errors="ignore")
    return summary, table


def _log_figures(study: optuna.Study) -> None:
    from optuna.visualization import matplotlib as views

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # matplotlib views are "experimental"
    for name, draw in (("optimization_history", views.plot_optimization_history),
                       ("param_importances", views.plot_param_importances),
                       ("intermediate_values", views.plot_intermediate_values),
                       ("parallel_coordinate", views.plot_parallel_coordinate)):
        try:
            axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. importances need 2+ trials
            mlflow.log_text(f"not drawn: {error}\n", f"figures/{name}.txt")
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        mlflow.log_figure(figure, f"figures/{name}.png")
        plt.close(figure)


def _best_model(study: optuna.Study, folder: Path) -> Path:
    """The best trial's model file: this host's copy, or the one in the trial's MLflow run (another host's)."""
    best = study.best_trial
    source = best.user_attrs.get("model_path")
    if source and Path(source).is_file():
        return Path(source)
    run_id = best.user_attrs.get("mlflow_run_id")
    name = Path(source or f"trial-{best.number}.keras").name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as scratch:
            fetched = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"model/{name}",
                                                          dst_path=scratch)
            os.replace(fetched, folder / name)
        return folder / name
    except (mlflow.exceptions.MlflowException, OSError, TypeError) as error:
        raise UserError(f"study {study.study_name}: the best trial's model (trial {best.number}) is neither on this "
                        f"host ({source}) nor in its MLflow run {run_id} ({type(error).__name__}); rerun the stage "
                        "where that trial ran, or use a tracking server all workers share") from None
