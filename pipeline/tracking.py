"""MLflow: where runs go, what every run is tagged with, how a model is logged.

Runs go to ``sqlite:///<project root>/mlflow.db`` (artifacts under
``<project root>/mlruns/``) unless ``MLFLOW_TRACKING_URI`` names another
store; the experiment is ``imdb-sentiment``. ``mlflow ui`` started in the
project root with no flags shows them.

``dvc exp run --temp`` and ``--queue`` run stages in a copy of the repository
under ``<project root>/.dvc/tmp/exps/``; :func:`project_root` sees through
that copy, so those runs land in the workspace's store instead of a database
that DVC deletes afterwards.

Every run is tagged ``lab.owner`` (host, pid and the process's start time). A
process interrupted by Ctrl-C or SIGTERM ends its runs as KILLED; one that could
not (kill -9, out of memory, power loss) leaves them RUNNING, and the next stage
started on the same host marks them KILLED (:func:`close_orphans`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import keras
import mlflow
import numpy as np
import requests
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import fluent
from sqlalchemy.exc import SQLAlchemyError

from pipeline.locks import StoreLock
from pipeline.paths import MLFLOW_ARTIFACTS, MLFLOW_DB
from pipeline.provenance import file_sha256
from pipeline.stage import UserError, environment_problem, unwinding


class _OneLineDatabaseErrors(logging.Filter):
    """MLflow logs a database error with its traceback, then raises it: the stage says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        record.msg, record.args = "SQLAlchemy database error (reported below)", ()
        return True



EXPERIMENT = "imdb-sentiment"
OWNER_TAG = "lab.owner"
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def project_root(directory: Path) -> Path:
    """The workspace whose mlflow.db should receive runs made in ``directory``."""
    parts = directory.resolve().parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return directory.resolve()


def start(root: Path, tracking_uri: str | None) -> str:
    """Point MLflow at the store and experiment; return the tracking URI in use.

    A store that cannot be used stops here, before any training, with one line.
    """
    uri = tracking_uri or f"sqlite:///{root / MLFLOW_DB}"
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # not three lines per run
    database_log = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _OneLineDatabaseErrors) for f in database_log.filters):
        database_log.addFilter(_OneLineDatabaseErrors())
    where = f"MLFLOW_TRACKING_URI = {redact(uri)!r}" if tracking_uri else f"MLflow store {uri}"
    if uri.startswith(("http://", "https://")):
        # MLflow's own client retries an unreachable server for minutes; ask once, briefly.
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=10).raise_for_status()
        except requests.RequestException as error:
            raise UserError(f"{where}: no MLflow server answers ({type(error).__name__}); start it or unset "
                            "MLFLOW_TRACKING_URI to use mlflow.db in the project root") from None
    try:
        with StoreLock(uri, "mlflow-store-init"):  # two processes creating a new store's tables break it
            mlflow.set_tracking_uri(uri)
            _ensure_experiment(root, tracking_uri)
            close_orphans()
    except (mlflow.exceptions.MlflowException, ImportError, SQLAlchemyError, OSError) as error:
        if environment_problem(error):
            raise  # a read-only project or a full disk: said as such by pipeline.stage
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{where}: unusable ({redact_text(reason, uri)}); fix it or unset MLFLOW_TRACKING_URI") \
            from None
    return uri


def owner() -> str:
    """Which process this is, in a form another process can check: host:pid:start time:process table.

    The last part names the process table this pid belongs to (the kernel's boot id and the PID
    namespace): containers sharing a host name each have their own, and another table's pids say
    nothing about ours."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}:{_process_table()}"


def _start_time(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat, after the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _process_table() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return "?"


def owner_is_dead(tag: str) -> bool:
    """True when ``tag`` names a process of this process table that no longer runs; False when alive or
    unknowable (another host or container: its heartbeat (Optuna) or its owner has to tell)."""
    host, pid, started, table = (tag.split(":", 3) + ["", "", ""])[:4]
    if table:
        if table != _process_table() or "?" in (table, started) or not pid.isdigit():
            return False
    elif host != socket.gethostname() or not pid.isdigit() or started == "?":  # a tag from before the table
        return False
    return _start_time(int(pid)) != started  # gone, or the pid now belongs to a newer process


def close_orphans() -> None:
    """Mark KILLED the runs left RUNNING by processes of this host that died."""
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    for found in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tag = found.data.tags.get(OWNER_TAG)
        if tag and owner_is_dead(tag):
            client.set_terminated(found.info.run_id, "KILLED")
            print(f"MLflow run {found.info.run_name} ({found.info.run_id}) was left RUNNING by a process that died "
                  f"({tag}); marked KILLED", flush=True)


@contextmanager
def started_run(**kwargs) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run`` that tags the run with its owner, records system metrics (CPU, memory, every
    10 s) and ends the run KILLED on Ctrl-C or SIGTERM."""
    with mlflow.start_run(**{"log_system_metrics": True} | kwargs) as active:
        mlflow.set_tag(OWNER_TAG, owner())
        try:
            yield active
        except KeyboardInterrupt:
            with unwinding():
                end_killed()
            raise


def end_killed(tries: int = 30) -> None:
    """End the active run KILLED. Interrupted workers all end their runs at once, and a SQLite store lets
    one write at a time ("database is locked" once its busy timeout passes): try again, once a second.

    ``mlflow.end_run`` takes the run off the active stack *before* it writes the status, so a refused
    write must not be retried with ``end_run`` (that would end the parent run, or nothing, and leave this
    one RUNNING): later tries write this run's status directly, and stop its system-metrics thread."""
    active = mlflow.active_run()
    if active is None:
        return
    run_id = active.info.run_id
    for attempt in range(tries):
        try:
            if attempt == 0:
                mlflow.end_run("KILLED")
            else:
                mlflow.MlflowClient().set_terminated(run_id, "KILLED")
                monitor = getattr(fluent, "run_id_to_system_metrics_monitor", {}).pop(run_id, None)
                if monitor is not None:
                    monitor.finish()
            return
        except mlflow.exceptions.MlflowException:
            if attempt == tries - 1:
                raise
            time.sleep(1)


def log_inputs(**inputs) -> None:
    """``mlflow.log_inputs``, tried once more if it fails: two workers logging the same new dataset at
    the same moment both find it missing, and the store inserts one and refuses the other (a key
    violation). The second try finds the dataset and links this run to it."""
    try:
        mlflow.log_inputs(**inputs)
    except mlflow.exceptions.MlflowException:
        mlflow.log_inputs(**inputs)


def redact(uri: str) -> str:
    """The URI without its password, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def redact_text(text: str, uri: str) -> str:
    """``text`` (a driver's error message, say) with the password of ``uri`` masked wherever it appears."""
    password = urlsplit(uri).password
    return text.replace(password, "***") if password else text


def _ensure_experiment(root: Path, tracking_uri: str | None) -> None:
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # With our own SQLite store, fix the artifact folder in the project root: the
        # default (./mlruns of the current directory) would be inside a DVC temp copy.
        location = None if tracking_uri else (root / MLFLOW_ARTIFACTS / EXPERIMENT).as_uri()
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a parallel stage
    experiment = mlflow.set_experiment(EXPERIMENT)
    if experiment.tags.get(KIND_TAG) != KIND:
        # MLflow 3 opens an experiment without this tag on its GenAI overview (traces), not on the runs.
        try:
            mlflow.set_experiment_tag(KIND_TAG, KIND)
        except mlflow.exceptions.MlflowException:
            # Two workers on one tracking server both found the tag missing; the server's upsert
            # lets one insert and refuses the other (a unique-key violation). Fine if it is set now.
            if mlflow.get_experiment_by_name(EXPERIMENT).tags.get(KIND_TAG) != KIND:
                raise


def log_test_metrics(results: dict[Path, dict], test_dataset=None) -> dict[Path, list[str]]:
    """Log each model's test metrics into every run tagged with its file's hash; return the run ids per model.

    Where that run logged the model (train replicates), the metrics are attached to the logged model
    too, so MLflow's Models view shows them; ``test_dataset`` (an MLflow dataset) is named as the
    run's "testing" input and as the dataset the metrics were computed on.
    """
    from mlflow.entities import DatasetInput, InputTag

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    logged: dict[Path, list[str]] = {}
    for path, metrics in results.items():
        runs = client.search_runs([experiment.experiment_id], f"tags.`model.sha256` = '{file_sha256(path)}'")
        for found in runs:
            run_id = found.info.run_id
            models = client.search_logged_models([experiment.experiment_id],
                                                 filter_string=f"source_run_id = '{run_id}'")
            on = {"model_id": models[0].model_id} if models else {}
            if test_dataset is not None:
                on |= {"dataset_name": test_dataset.name, "dataset_digest": test_dataset.digest}
                client.log_inputs(run_id, datasets=[DatasetInput(
                    test_dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "testing")])])
            timestamp = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(key, float(value), timestamp, 0, **on)
                                              for key, value in metrics.items()])
            client.log_dict(run_id, metrics, "test_metrics.json")
        logged[path] = [found.info.run_id for found in runs]
    return logged


def model_requirements() -> list[str]:
    """What a logged Keras model needs, named directly from the installed versions.

    Without it MLflow infers the requirements by loading the model in a subprocess: about 10 s
    for every model logged (every replicate), for the same answer.
    """
    from importlib import metadata

    if keras.backend.backend() == "jax":
        backends = ["jax", "jaxlib"]
    else:
        backends = [next(name for name in ("tensorflow-cpu", "tensorflow") if _installed(metadata, name))]
    return [f"keras=={keras.__version__}", *(f"{name}=={metadata.version(name)}" for name in backends),
            f"numpy=={metadata.version('numpy')}"]


def _installed(metadata, name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def log_model(model: keras.Model, example: np.ndarray) -> str:
    """Log ``model`` with MLflow's Keras flavor and a signature; return its model URI.

    The input example is logged beside it as ``input_example.json``:
    ``mlflow.keras.log_model(..., input_example=...)`` fails on MLflow 3.17.2 with
    Keras 3.15 (it writes the example before creating the model folder).
    """
    prediction = model.predict(example, verbose=0)
    info = mlflow.keras.log_model(model, name="model", signature=infer_signature(example, prediction),
                                  pip_requirements=model_requirements())
    mlflow.log_dict({"inputs": example.tolist(), "predictions": prediction.tolist()}, "input_example.json")
    return info.model_uri


def log_text_artifacts(files: dict[str, str]) -> None:
    """Log small text files (model summary, etc.) by name."""
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            (Path(folder) / name).write_text(content, encoding="utf-8")
            mlflow.log_artifact(str(Path(folder) / name))


def dumps(metrics: dict) -> str:
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"
