"""Several workers on one study: the storage they share, the trial slots they hand out, and what
happens to the trials of a worker that died.

A study holds exactly ``tune.n_trials`` finished trials however many workers run it (a
journal file or PostgreSQL storage). A worker asks for a trial only while holding the
study's lock (pipeline.locks) and only when finished plus running trials leave a slot
free; when the last slots are taken by other workers it waits for them. A trial whose
worker died is failed (heartbeat, or its owner process gone from this process table)
and its slot is run again. The objective itself (pipeline.studies) knows none of this.
"""

from __future__ import annotations

import time
import warnings
import zlib

import mlflow
import optuna

from pipeline.locks import StoreLock
from pipeline.stage import UserError
from pipeline.tracking import owner_is_dead

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class TrialCut(Exception):
    """A trial stopped by ``tune.timeout``: recorded as cut (FAIL plus the ``cut`` attribute), never as pruned."""


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


def fail_dead_trials(study: optuna.Study, storage) -> None:
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
            study.tell(trial.number, state=states.FAIL, skip_if_finished=True)
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


class SlotSampler(optuna.samplers.TPESampler):
    """TPE that lets the other workers in as soon as Optuna has made this worker's trial: the slot lock is
    held from counting the study's trials to creating one (``run_trials``), never while a trial trains.
    ``before_trial`` is the sampler hook Optuna calls right after it creates (or dequeues) a trial."""

    def __init__(self, slots: StoreLock, seed: int, startup_trials: int = 10):
        super().__init__(seed=seed, n_startup_trials=startup_trials)
        self.slots = slots

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().before_trial(study, trial)
        self.slots.release()


def run_trials(study: optuna.Study, storage, slots: StoreLock, objective, n_trials: int, deadline: float,
                seed: str, startup_trials: int = 10) -> None:
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
            fail_dead_trials(study, storage)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            running = sum(t.state == states.RUNNING for t in trials)
            if finished >= n_trials:
                return
            if finished + running < n_trials:
                # Asks for the trial while the lock is held; the sampler releases it once the trial exists.
                study.sampler = SlotSampler(slots, seed=zlib.crc32(f"{seed}/{len(trials)}".encode()),
                                            startup_trials=startup_trials)
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
