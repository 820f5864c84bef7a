"""What a finished study leaves: its summary and trials table (the tune stage's DVC outputs), the
Optuna figures on its MLflow parent run, and the best trial's model file."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import mlflow
import optuna
import pandas as pd

from pipeline.figures import plt
from pipeline.stage import UserError
from pipeline.workers import FINISHED


def summarize(study: optuna.Study, n_trials: int) -> tuple[dict, pd.DataFrame]:
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    if not any(t.state == states.COMPLETE for t in trials):
        raise UserError(f"study {study.study_name}: no trial completed (every one was pruned or failed)")
    trained = sum(t.user_attrs.get("epochs_trained", 0) for t in finished)
    # What the trials would have trained without pruning: a complete trial what it trained (train.patience may
    # have stopped it before its epochs: that is early stopping, not pruning), a pruned one its epochs at most.
    unpruned = sum(t.user_attrs.get("epochs_trained", 0) if t.state == states.COMPLETE
                   else t.params.get("epochs", t.user_attrs.get("epochs_trained", 0)) for t in finished)
    stopped_early = sum(t.params.get("epochs", 0) - t.user_attrs.get("epochs_trained", 0) for t in finished
                        if t.state == states.COMPLETE and "epochs" in t.params)
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
        "epochs_saved_by_patience": stopped_early,
        "trial_seconds": round(sum(t.duration.total_seconds() for t in finished if t.duration), 1),
    }
    table = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    # A study with a named metric calls the column value_<name>: the table keeps its one name, "value".
    table = table.rename(columns={f"value_{n}": "value" for n in study.metric_names or []})
    # Where this host keeps trial models says nothing about the results: keep it out of the report.
    table = table.drop(columns=["user_attrs_model_path"], errors="ignore")
    return summary, table


def log_figures(study: optuna.Study) -> None:
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


def best_model(study: optuna.Study, folder: Path) -> Path:
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
