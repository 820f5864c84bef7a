"""Registry and raw-text prediction: the register stage, the pyfunc, `pipeline.predict` and a real
`mlflow models serve` on 127.0.0.1, on a project trained on the test archive's 40 reviews per split and class."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import SMALL_ARCHIVE, command_env, free_port, listening_hosts, make_project, run, set_params


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> Path:
    """dense and lstm, two seeds each, trained on the 40 reviews per split and class of the
    test archive, then registered."""
    project = make_project(tmp_path_factory.mktemp("serving"))
    set_params(project, **{"prepare.limit": 40, "prepare.num_words": 2000, "base.seeds": [1, 2],
                           "train.experiments.dense.epochs": 2, "train.experiments.lstm.epochs": 1,
                           "train.experiments.lstm.maxlen": 120, "evaluate.probe_reviews": 16})
    run(["dvc", "repro", "train@dense-1", "train@dense-2", "train@lstm-1", "train@lstm-2"], project,
        IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    run(["python", "-m", "pipeline.register"], project)
    return project


def client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def val_accuracy(project: Path, name: str) -> float:
    """Validation accuracy of a replicate named like its file, e.g. lstm/seed2."""
    return json.loads((project / f"metrics/train/{name}.json").read_text())["val/accuracy"]


REPLICATES = ("dense/seed1", "dense/seed2", "lstm/seed1", "lstm/seed2")


def test_champion_is_the_best_on_validation_and_versions_name_their_source(registered: Path):
    c = client(registered)
    champion = c.get_model_version_by_alias("imdb-sentiment", "champion")
    challenger = c.get_model_version_by_alias("imdb-sentiment", "challenger")
    # Every replicate is a candidate. Only the committed full-run metrics of the other experiments
    # exist here; they have no model file.
    scores = {name: val_accuracy(registered, name) for name in REPLICATES}
    ranked = sorted(scores, key=lambda name: -scores[name])
    assert scores[champion.tags["model"]] == scores[ranked[0]]
    assert scores[challenger.tags["model"]] == scores[ranked[1]]
    source = c.get_run(champion.tags["source_run"])
    assert source.info.run_name == champion.tags["model"].replace("/seed", " seed ")
    assert source.data.tags["model.sha256"] == champion.tags["model.sha256"]
    assert len(champion.tags["data.sha256"]) == 64 and float(champion.tags["val_accuracy"]) == scores[
        champion.tags["model"]]
    report = json.loads((registered / "reports/registry.json").read_text())
    assert report["champion"]["version"] == int(champion.version)

    # Nothing better: a rerun registers nothing new and moves no alias.
    registered_before = len(c.search_model_versions("name='imdb-sentiment'"))
    run(["python", "-m", "pipeline.register"], registered)
    assert len(c.search_model_versions("name='imdb-sentiment'")) == registered_before
    assert c.get_model_version_by_alias("imdb-sentiment", "champion").version == champion.version

    # A model that beats the champion on validation takes over; the old champion becomes the
    # challenger. (Its metrics file is edited here: the same file, so its version is reused.)
    metrics_path = registered / f"metrics/train/{challenger.tags['model']}.json"
    metrics_path.write_text(json.dumps(json.loads(metrics_path.read_text()) | {"val/accuracy": 0.99}))
    result = run(["python", "-m", "pipeline.register"], registered)
    assert "best on validation: " + challenger.tags["model"] + " (0.9900)" in result.stdout
    assert c.get_model_version_by_alias("imdb-sentiment", "champion").version == challenger.version
    assert c.get_model_version_by_alias("imdb-sentiment", "challenger").version == champion.version
    assert len(c.search_model_versions("name='imdb-sentiment'")) == registered_before

    # A champion scored on other data (another data hash: another split, limit or vocabulary) is never
    # compared by its stale tag, however high: it loses its claim. Here the champion's tags are made
    # those of a model from other data that no current file matches.
    stale = c.get_model_version_by_alias("imdb-sentiment", "champion")
    for key, value in {"data.sha256": "0" * 64, "model.sha256": "f" * 64, "val_accuracy": "0.9999"}.items():
        c.set_model_version_tag("imdb-sentiment", stale.version, key, value)
    result = run(["python", "-m", "pipeline.register"], registered)
    assert "was scored on other data" in result.stdout and "not compared" in result.stdout
    now = c.get_model_version_by_alias("imdb-sentiment", "champion")
    assert now.version != stale.version and float(now.tags["val_accuracy"]) == 0.99
    assert now.tags["data.sha256"] == champion.tags["data.sha256"]
    report = json.loads((registered / "reports/registry.json").read_text())
    assert report["not_compared"]["version"] == int(stale.version)
    assert report["champion"]["version"] == int(now.version)


def test_pyfunc_on_raw_text_equals_the_keras_model_on_prepared_arrays(registered: Path):
    import keras

    from pipeline import evaluate
    from pipeline.archive import read_reviews
    from pipeline.data import load_split, pad

    mlflow.set_tracking_uri(f"sqlite:///{registered / 'mlflow.db'}")
    try:
        name = client(registered).get_model_version_by_alias("imdb-sentiment", "champion").tags["model"]
        pyfunc = mlflow.pyfunc.load_model("models:/imdb-sentiment@champion")
    finally:
        mlflow.set_tracking_uri(None)
    model = keras.models.load_model(registered / f"models/{name}.keras")  # e.g. models/lstm/seed2.keras
    experiment = name.split("/")[0]
    params = yaml.safe_load((registered / "params.yaml").read_text())
    maxlen = params["train"]["experiments"][experiment]["maxlen"]
    # The store keeps every word; the model, as evaluate reads it, sees its vocabulary cap.
    test = load_split("test", registered / "data/prepared").capped(params["prepare"]["num_words"])
    # As evaluate reads it: a bucketed recurrent model (the default) each review at its own width.
    expected, _ = evaluate.predict(model, pad(test, maxlen), test.lengths, "pre", 128)
    names = (registered / "data/prepared/test/names.txt").read_text().split()
    texts = {r.name: r.text for r in read_reviews(registered / "data/raw/aclImdb_v1.tar.gz", limit=40)
             if r.split == "test"}
    assert len(names) == 80
    predicted = pyfunc.predict(pd.DataFrame({"review": [texts[n] for n in names]}))
    np.testing.assert_allclose(predicted["probability"].to_numpy(), expected, rtol=0, atol=1e-6)
    assert set(predicted["label"]) <= {"positive", "negative"}


def test_predict_command_reads_arguments_files_and_stdin(registered: Path, tmp_path: Path):
    result = run(["python", "-m", "pipeline.predict", "A wonderful film.", "Awful."], registered)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("positive", "negative")
    assert 0 <= float(lines[0].split("\t")[1]) <= 1 and lines[1].endswith("Awful.")
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("Great.\n\nBad.\n")
    assert len(run(["python", "-m", "pipeline.predict", "--file", str(reviews)], registered).stdout.splitlines()) == 2
    piped = subprocess.run(["python", "-m", "pipeline.predict", "--file", "-", "--model",
                            "models:/imdb-sentiment@challenger"], cwd=registered, env=command_env(),
                           input="One review from stdin\n", capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout.count("\n") == 1

    reviews.write_bytes(b"fine\n\xff\xfe broken\n")
    for args, message in [
        (["--file", str(reviews)], "line 2 is not valid UTF-8"),
        ([], "no review given"),
        (["--model", "models:/imdb-sentiment@nobody", "text"], "model models:/imdb-sentiment@nobody: cannot load"),
    ]:
        failed = run(["python", "-m", "pipeline.predict", *args], registered, check=False)
        assert failed.returncode == 2 and message in failed.stderr.strip().splitlines()[-1], failed.stderr
        assert "Traceback" not in failed.stderr


def post(port: int, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_mlflow_models_serve_answers_raw_text_and_survives_bad_requests(registered: Path):
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", "models:/imdb-sentiment@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=registered, env=command_env(MLFLOW_TRACKING_URI=f"sqlite:///{registered / 'mlflow.db'}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not start")
        assert listening_hosts(port) == {"127.0.0.1"}
        good = json.dumps({"dataframe_records": [{"review": "A wonderful film."}, {"review": "Dull."}]}).encode()
        status, answer = post(port, good)
        assert status == 200 and len(answer["predictions"]) == 2
        assert {"probability", "label"} == set(answer["predictions"][0])

        cases = [
            ({"inputs": ["A list of texts works too", ""]}, 200, None),  # an empty review is still a review
            ({"inputs": ["great " * 170_000]}, 200, None),  # a 1 MB review is truncated to maxlen
            # Only text is a review: null is not the text "None", nor 3 the text "3".
            ({"inputs": [None]}, 400, "review 0 is not text (null); send one string per review"),
            ({"inputs": ["fine", None]}, 400, "review 1 is not text (null)"),
            ({"inputs": [3]}, 400, "review 0 is not text (int)"),
            ({"inputs": [True, "x"]}, 400, "review 0 is not text (bool)"),
            ({"dataframe_records": [{"text": "x"}]}, 400, "input has no 'review' column"),
            ({"inputs": []}, 400, "missing inputs"),
        ]
        for body, expected, message in cases:
            status, answer = post(port, json.dumps(body).encode())
            assert status == expected, (body, answer)
            if message:
                assert message in answer["message"]
        status, answer = post(port, b'{"inputs": ["\xff\xfe not UTF-8"]}')
        assert status == 400 and "UnicodeDecodeError" in answer["message"]
        status, answer = post(port, good)  # still serving
        assert status == 200 and len(answer["predictions"]) == 2
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker processes
        server.wait(timeout=60)


def test_a_model_trained_on_length_buckets_serves_each_review_at_its_own_width(tmp_path: Path):
    from types import SimpleNamespace

    from pipeline import buckets
    from pipeline.models import build
    from pipeline.serving import SentimentModel

    model = build("gru", optimizer="rmsprop", learning_rate=1e-3, num_words=50, maxlen=None, embedding_dim=4,
                  units=3)
    model.save(tmp_path / "model.keras")
    words = [f"w{i}" for i in range(60)]
    (tmp_path / "vocab.tsv").write_text("".join(f"{w}\t{100 - i}\n" for i, w in enumerate(words)))
    (tmp_path / "settings.json").write_text(json.dumps({"maxlen": 20, "padding": "pre", "truncating": "pre",
                                                        "num_words": 50}))
    served = SentimentModel()
    served.load_context(SimpleNamespace(artifacts={"keras_model": str(tmp_path / "model.keras"),
                                                   "vocabulary": str(tmp_path / "vocab.tsv"),
                                                   "settings": str(tmp_path / "settings.json")}))
    reviews = ["w1 w2 w3", " ".join(words[:30]), "w5 " * 12]
    together = served.predict(None, reviews)["probability"].to_numpy()
    alone = [served.predict(None, [review])["probability"].iloc[0] for review in reviews]
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    x, lengths = served._encode(reviews)
    for i, length in enumerate(lengths):  # 4, 31 and 13 tokens: widths 8, 20 (maxlen) and 16
        width = int(buckets.width(min(length, 20), 20))
        assert together[i] == pytest.approx(float(model.predict_on_batch(x[i:i + 1, 20 - width:])[0, 0]), rel=1e-5)
    # Not the maxlen padding the model never saw in training.
    assert abs(float(model.predict_on_batch(x[:1])[0, 0]) - together[0]) > 1e-6
