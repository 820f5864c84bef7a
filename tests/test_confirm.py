"""The confirm stage: a study's best configuration retrained with each replicate seed, or, when the best is the
default experiment, that experiment's replicate reused (real Optuna SQLite storage and MLflow store)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from pipeline import config
from tests.conftest import run, set_params


def test_the_confirm_stage_retrains_exactly_the_best_configuration_with_each_seed(tiny: Path):
    """confirm@lstm-<seed> reads the study's best_params and trains them, and every setting the study did
    not search from the default experiment, with each replicate seed, as a model lstm-tuned."""
    space = {"units": {"low": 4, "high": 8, "log": False}, "pooling": {"choices": ["last", "max"]},
             "batch_size": {"low": 8, "high": 32, "log": True},
             "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
             "num_words": {"low": 50, "high": 300, "log": True}}  # a cap on the one prepared store (300 words)
    set_params(tiny, **{"tune.space": space, "tune.n_trials": 3, "tune.pruner": "none", "base.seeds": [1, 2]})
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    study = json.loads((tiny / "reports/tuning/lstm.json").read_text())
    best = study["best_params"]
    for seed in (1, 2):
        output = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", str(seed)], tiny).stdout
        assert f"training lstm-tuned seed {seed} (lstm, maxlen 40, 1 epochs" in output

    client = mlflow.MlflowClient(f"sqlite:///{tiny / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    params = config.load(tiny / "params.yaml")
    default = params.train.experiments["lstm"]
    from pipeline.models import load

    for seed in (1, 2):
        confirmed = runs[f"lstm-tuned seed {seed}"]
        logged = confirmed.data.params
        # The best trial's values, and the default experiment's for everything the study did not search.
        assert {k: logged[k] for k in best} == {k: str(v) for k, v in best.items()}
        assert (logged["maxlen"], logged["epochs"], logged["embedding_dim"]) == ("40", "1", str(default.embedding_dim))
        assert (logged["seed"], logged["experiment"]) == (str(seed), "lstm-tuned")
        assert confirmed.data.tags["lab.study"] == study["study"]
        assert confirmed.data.tags["dvc.stage"] == f"confirm@lstm-{seed}"
        assert confirmed.data.tags["lab.experiment"] == "lstm-tuned"
        model = load(tiny / f"models/lstm-tuned/seed{seed}.keras")
        recurrent = next(layer for layer in model.layers if type(layer).__name__ == "LSTM")
        assert recurrent.units == best["units"]
        # Trained on length buckets (train.bucketing, the default): built for any length, as train@ builds it.
        assert model.input_shape[1] is None and logged["bucketing"] == "True"
        assert ("GlobalMaxPooling1D" in [type(layer).__name__ for layer in model.layers]) == (best["pooling"] == "max")
        assert float(model.optimizer.learning_rate) == pytest.approx(best["learning_rate"])
        embedding = next(layer for layer in model.layers if type(layer).__name__ == "Embedding")
        assert embedding.input_dim == best["num_words"]  # the vocabulary it trained on, capped at load time
        metrics = json.loads((tiny / f"metrics/train/lstm-tuned/seed{seed}.json").read_text())
        assert (metrics["experiment"], metrics["seed"]) == ("lstm-tuned", seed)
        assert (tiny / f"plots/train/lstm-tuned/seed{seed}.csv").is_file()
    weights = [load(tiny / f"models/lstm-tuned/seed{seed}.keras").get_weights()[0] for seed in (1, 2)]
    assert not (weights[0] == weights[1]).all()  # each seed its own replicate


def test_the_confirm_stage_names_a_missing_study_or_an_unstudied_architecture(tiny: Path):
    import shutil

    # As in a project that never ran tune (the copy holds the committed full run's results).
    (tiny / "reports/tuning/lstm.json").unlink(missing_ok=True)
    for folder in ("models/lstm-tuned", "metrics/train/lstm-tuned", "plots/train/lstm-tuned"):
        shutil.rmtree(tiny / folder, ignore_errors=True)
    missing = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", "1"], tiny, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        "error: reports/tuning/lstm.json: missing; run `dvc repro tune@lstm` first")
    set_params(tiny, **{"tune.architectures": ["lstm"]})
    other = run(["python", "-m", "pipeline.confirm", "--architecture", "gru", "--seed", "1"], tiny, check=False)
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1] == (
        "error: --architecture 'gru': not in params.yaml tune.architectures ['lstm']")
    (tiny / "reports/tuning").mkdir(parents=True, exist_ok=True)
    (tiny / "reports/tuning/lstm.json").write_text('{"study": "lstm-x", "best_params": {"colour": "red"}}')
    odd = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", "1"], tiny, check=False)
    assert odd.returncode == 2 and "best_params must map settings among maxlen" in odd.stderr.strip().splitlines()[-1]
    assert not any((tiny / folder).exists() for folder in ("models/lstm-tuned", "metrics/train/lstm-tuned"))


def test_when_the_default_experiment_wins_its_replicate_is_reused_not_retrained(tiny: Path):
    """Trial 0 is the default experiment: with train@lstm-1's files and a finished run that logged exactly these
    settings, confirm@lstm-1 copies that replicate and its MLflow run names it; without them (seed 2), it trains."""
    set_params(tiny, **{"tune.n_trials": 1, "base.seeds": [1, 2]})  # one trial: the default experiment wins
    run(["python", "-m", "pipeline.train", "--experiment", "lstm", "--seed", "1"], tiny)
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    reused = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", "1"], tiny).stdout
    assert "the study's best configuration is the default experiment 'lstm'" in reused
    assert "training lstm-tuned" not in reused
    trained = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", "2"], tiny).stdout
    assert "training lstm-tuned seed 2" in trained

    assert (tiny / "models/lstm-tuned/seed1.keras").read_bytes() == (tiny / "models/lstm/seed1.keras").read_bytes()
    for folder, name in (("plots/train", "seed1.csv"), ("metrics/train", "seed1-gradients.csv")):
        assert (tiny / folder / "lstm-tuned" / name).read_text() == (tiny / folder / "lstm" / name).read_text()
    source = json.loads((tiny / "metrics/train/lstm/seed1.json").read_text())
    copied = json.loads((tiny / "metrics/train/lstm-tuned/seed1.json").read_text())
    assert copied == source | {"experiment": "lstm-tuned", "reused_from": "train@lstm-1"}

    client = mlflow.MlflowClient(f"sqlite:///{tiny / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    original, copy = runs["lstm seed 1"], runs["lstm-tuned seed 1"]
    assert copy.info.status == "FINISHED" and copy.data.tags["lab.reused_from"] == original.info.run_id
    assert copy.data.params == original.data.params | {"experiment": "lstm-tuned"}
    assert copy.data.params["patience"] == "3"
    assert copy.data.tags["model.sha256"] == original.data.tags["model.sha256"]  # evaluate logs its test score too
    assert copy.data.tags["dvc.stage"] == "confirm@lstm-1" and copy.data.tags["lab.experiment"] == "lstm-tuned"
    history = [m.value for m in client.get_metric_history(copy.info.run_id, "val/accuracy")]
    assert history == [m.value for m in client.get_metric_history(original.info.run_id, "val/accuracy")]
    assert {"learning_curves.png", "model_summary.txt", "seed1.csv"} <= {
        f.path for f in client.list_artifacts(copy.info.run_id)}
    assert [m.source_run_id for m in client.search_logged_models([experiment.experiment_id])].count(
        copy.info.run_id) == 1  # one logged model per replicate, as train@ logs it
    assert "lab.reused_from" not in runs["lstm-tuned seed 2"].data.tags


def test_a_replicate_trained_with_other_settings_is_not_reused(tiny: Path):
    """The files of train@lstm-1 alone are not enough: its run must have logged today's settings."""
    set_params(tiny, **{"tune.n_trials": 1, "base.seeds": [1]})
    run(["python", "-m", "pipeline.train", "--experiment", "lstm", "--seed", "1"], tiny)
    set_params(tiny, **{"train.patience": 1})  # a setting the replicate was not trained with
    run(["python", "-m", "pipeline.tune", "--architecture", "lstm"], tiny)
    output = run(["python", "-m", "pipeline.confirm", "--architecture", "lstm", "--seed", "1"], tiny).stdout
    assert "training lstm-tuned seed 1" in output and "reusing" not in output
