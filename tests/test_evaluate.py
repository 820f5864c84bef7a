"""evaluate: its main() on a small fake project (real models, fake training records), and evaluate and report
from partial results. The whole pipeline end to end is test_pipeline.py."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import probes
from pipeline.data import Sequences, save_split
from pipeline.metrics import discordant, mcnemar_exact
from pipeline.stage import UserError
from tests.conftest import ROOT, SMALL_ARCHIVE, run
from tests.test_train import SEEDS, shrink

# The fake project: three probed experiments (named after their architecture), one that is not probed and
# lacks its third seed, and one tuned model (lstm's study, confirmed with two of the three seeds). dense has a
# longer window than the others (gradients.csv is cut to the shortest).
NUM_WORDS = 50
FAKE = {"dense": ("dense", 40), "simplernn": ("simplernn", 30), "lstm": ("lstm", 30), "lstm_short": ("lstm", 20)}
TUNED_MAXLEN = 24
TUNED = {"lstm-tuned": ("lstm", TUNED_MAXLEN)}
FAKE_SEEDS = {"dense": [1, 2, 3], "simplernn": [1, 2, 3], "lstm": [1, 2, 3], "lstm_short": [1, 2],
              "lstm-tuned": [1, 2]}
DISTANCES = [0, 5, 20]
COLUMNS = ["model", "kind", "seed", "val/accuracy", "best/val/accuracy", "last/val/accuracy", "kept/epoch",
           "test/accuracy", "test/loss", "test/roc_auc", "test/f1"]


def fake_split(rng: np.random.Generator, n: int) -> Sequences:
    lengths = rng.integers(15, 60, size=n)
    sequences = [[1, *rng.integers(2, NUM_WORDS, size=length - 1).tolist()] for length in lengths]
    return Sequences.from_lists(sequences, [i % 2 for i in range(n)], [8 if i % 2 else 2 for i in range(n)])


def fake_norms(maxlen: int, seed: int) -> dict[str, np.ndarray]:
    """Gradient norms growing towards the window's end, a little different per seed and snapshot."""
    steps = np.arange(1, maxlen + 1, dtype=np.float64)
    # Six significant digits, as the train stage writes them: the file holds exactly these numbers.
    return {s: np.array([float(f"{v:.6g}") for v in (steps / maxlen) ** (k + 1) * (1 + seed / 10)])
            for k, s in enumerate(probes.SNAPSHOTS)}


def write_params(project: Path, **evaluate) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["base"] |= {"seed": 42, "seeds": [1, 2, 3]}
    params["prepare"]["num_words"] = NUM_WORDS
    params["train"]["experiments"] = {
        name: {"architecture": a, "maxlen": m, "units": 4, "embedding_dim": 4, "dropout": 0.0, "epochs": 1}
        for name, (a, m) in FAKE.items()}
    params["tune"]["architectures"] = ["lstm"]
    params["evaluate"] = {"probe_reviews": 10, "memory_content": 10, "memory_distances": DISTANCES} | evaluate
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def save_model(model, path: Path) -> None:
    """Save an untrained model as a trained one is saved: with its optimizer's variables."""
    model.optimizer.build(model.trainable_variables)
    model.save(path)


def make_fake_project(project: Path) -> dict:
    """Prepared splits, a saved model per replicate with its metrics and gradient files (experiments and the
    tuned model's confirmed replicates), and the study summary the tuned model's settings come from.
    Returns what the files say: validation accuracy and gradient norms per (model, seed)."""
    import keras

    from pipeline.models import build
    from pipeline.train import gradients_csv

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("val", 30), ("test", 40)):
        save_split(fake_split(rng, n), [f"{split}{i}" for i in range(n)], project / "data/prepared" / split)
    # Every word kept, as prepare writes the store (each model caps the vocabulary when it reads it).
    (project / "data/prepared/stats.json").write_text(json.dumps({"vocabulary_words": NUM_WORDS - 3}))
    val_accuracy, norms = {}, {}
    for name, (architecture, maxlen) in (FAKE | TUNED).items():
        for seed in FAKE_SEEDS[name]:
            keras.utils.set_random_seed(seed + 10 * len(val_accuracy))
            folder = project / "models" / name
            folder.mkdir(parents=True, exist_ok=True)
            save_model(build(architecture, optimizer="rmsprop", learning_rate=0.001, num_words=NUM_WORDS,
                             maxlen=maxlen, embedding_dim=4, units=4), folder / f"seed{seed}.keras")
            # simplernn has the best validation accuracy: the champion, whatever the test says.
            base = {"dense": 0.6, "simplernn": 0.7, "lstm": 0.65, "lstm_short": 0.5, "lstm-tuned": 0.66}[name]
            val = base + seed / 100
            val_accuracy[name, seed] = val
            metrics = {"experiment": name, "seed": seed, "keep": "best", "kept/epoch": seed, "val/accuracy": val,
                       "best/val/accuracy": val, "last/val/accuracy": val - 0.05, "val/loss": 0.6}
            records = project / "metrics/train" / name
            records.mkdir(parents=True, exist_ok=True)
            (records / f"seed{seed}.json").write_text(json.dumps(metrics))
            norms[name, seed] = fake_norms(maxlen, seed)
            (records / f"seed{seed}-gradients.csv").write_text(gradients_csv(norms[name, seed]))
    (project / "reports/tuning").mkdir(parents=True)
    (project / "reports/tuning/lstm.json").write_text(json.dumps(
        {"best_value": 0.66, "best_params": {"maxlen": TUNED_MAXLEN, "units": 4}}))
    return {"val": val_accuracy, "norms": norms}


def run_main(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import evaluate

    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["evaluate"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    evaluate.main()


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):
    project = tmp_path_factory.mktemp("fake")
    write_params(project)
    truth = make_fake_project(project)
    (project / "reports/evaluation/roc").mkdir(parents=True)
    (project / "reports/evaluation/roc/gone.csv").write_text("fpr,tpr\n")  # a model that no longer exists
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(output):
        run_main(project, monkeypatch)
    return project, truth, output.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_every_model_file_is_scored_once_and_summarised_over_its_seeds(evaluated):
    project, truth, output = evaluated
    rows = read_csv(project / "reports/evaluation/replicates.csv")
    assert list(rows[0]) == COLUMNS
    expected = [(name, seed) for name in [*FAKE, *TUNED] for seed in FAKE_SEEDS[name]]
    assert [(r["model"], int(r["seed"])) for r in rows] == expected
    assert {r["kind"] for r in rows if r["model"] == "lstm-tuned"} == {"tuned"}
    for row in rows:
        assert float(row["val/accuracy"]) == truth["val"][row["model"], int(row["seed"])]

    lines = [line for line in output.splitlines() if line.startswith("[")]
    assert len(lines) == 13 and lines[0].startswith("[1/13] dense seed 1: test/accuracy ")
    assert lines[-1].startswith("[13/13] lstm-tuned seed 2: test/accuracy ")
    assert "not evaluated: models/lstm_short/seed3.keras (run `dvc repro train@lstm_short-3`)" in output
    assert "not evaluated: models/lstm-tuned/seed3.keras (run `dvc repro confirm@lstm-3`)" in output

    summary = json.loads((project / "reports/evaluation/summary.json").read_text())
    headline = json.loads((project / "reports/evaluation.json").read_text())
    assert sorted(summary) == sorted([*FAKE, *TUNED]) and sorted(headline) == sorted([*summary, "champion"])
    for name, entry in summary.items():
        test = [float(r["test/accuracy"]) for r in rows if r["model"] == name]
        val = [float(r["val/accuracy"]) for r in rows if r["model"] == name]
        assert entry["n"] == len(test) and entry["seeds"] == [int(r["seed"]) for r in rows if r["model"] == name]
        assert entry["test/accuracy"]["values"] == test and entry["val/accuracy"]["values"] == val
        for key, values in (("test/accuracy", test), ("val/accuracy", val)):
            assert entry[key]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
            assert entry[key]["min"] == min(values) and entry[key]["max"] == max(values)
            if len(values) > 1:
                assert entry[key]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
                assert entry[key]["ci_low"] <= entry[key]["mean"] <= entry[key]["ci_high"]
            else:
                assert entry[key]["sd"] is None and entry[key]["ci_low"] is None
        assert headline[name] == {"test/accuracy/mean": entry["test/accuracy"]["mean"],
                                  "test/accuracy/sd": entry["test/accuracy"]["sd"], "n": entry["n"]}
        assert entry["kind"] == ("tuned" if name.endswith("-tuned") else "default") and entry["parameters"] > 0
    assert summary["lstm-tuned"]["settings"]["maxlen"] == TUNED_MAXLEN
    assert headline["champion"] == {"model": "simplernn", "val/accuracy": summary["simplernn"]["val/accuracy"]["mean"],
                                    "test/accuracy": summary["simplernn"]["test/accuracy"]["mean"]}

    # ROC and confusion of each model's first seed; the curve of a model that is gone is removed.
    for name in summary:
        assert len((project / f"reports/evaluation/confusion/{name}.csv").read_text().splitlines()) == 41
        assert (project / f"reports/evaluation/roc/{name}.csv").read_text().startswith("fpr,tpr\n")
    assert not (project / "reports/evaluation/roc/gone.csv").exists()
    run_info = json.loads((project / "reports/evaluation/run.json").read_text())
    assert run_info["champion"] == "simplernn" and run_info["seeds"] == [1, 2, 3]


def test_pairwise_mcnemar_pools_the_paired_replicates(evaluated):
    import keras

    from pipeline.data import load_split, pad

    project, _, _ = evaluated
    test = load_split("test", project / "data/prepared").capped(NUM_WORDS)  # as evaluate caps it
    labels = test.labels.astype(bool)
    maxlen = {name: m for name, (_, m) in (FAKE | TUNED).items()}
    correct = {}
    for name in maxlen:
        for seed in FAKE_SEEDS[name]:
            path = project / f"models/{name}/seed{seed}.keras"
            model = keras.models.load_model(path)
            x = pad(test, maxlen[name], "pre", "pre")
            correct[name, seed] = (model.predict(x, batch_size=512, verbose=0).reshape(-1) >= 0.5) == labels

    def pooled(a: str, b: str, pairs: list[tuple[int, int]]) -> tuple[int, int]:
        return discordant(np.concatenate([correct[a, i] for i, _ in pairs]),
                          np.concatenate([correct[b, j] for _, j in pairs]))

    rows = {(r["model_a"], r["model_b"]): r for r in read_csv(project / "reports/evaluation/pairwise.csv")}
    assert list(next(iter(rows.values()))) == ["model_a", "model_b", "only_a", "only_b", "mcnemar_p"]
    assert sorted(rows) == sorted(combinations([*FAKE, *TUNED], 2))
    expected = {("dense", "lstm"): [(1, 1), (2, 2), (3, 3)],  # the same seeds
                ("lstm", "lstm_short"): [(1, 1), (2, 2)],  # the seeds both have
                ("dense", "lstm-tuned"): [(1, 1), (2, 2)]}
    for (a, b), pairs in expected.items():
        only_a, only_b = pooled(a, b, pairs)
        assert (int(rows[a, b]["only_a"]), int(rows[a, b]["only_b"])) == (only_a, only_b)
        assert float(rows[a, b]["mcnemar_p"]) == mcnemar_exact(only_a, only_b)


def test_probes_cover_every_replicate_of_the_experiments_named_after_their_architecture(evaluated):
    project, truth, _ = evaluated
    probed = ["dense", "simplernn", "lstm"]
    gradients = read_csv(project / "reports/evaluation/gradients.csv")
    assert list(gradients[0]) == ["steps_before_end"] + [f"{m}/{s}" for m in probed for s in probes.SNAPSHOTS]
    assert [int(r["steps_before_end"]) for r in gradients] == list(range(29, -1, -1))  # the shortest window, 30
    for name in probed:
        for snapshot in probes.SNAPSHOTS:
            median = np.median([probes.relative(truth["norms"][name, s][snapshot]) for s in FAKE_SEEDS[name]], axis=0)
            assert [float(r[f"{name}/{snapshot}"]) for r in gradients] == pytest.approx(median[-30:], rel=1e-5)

    reach = read_csv(project / "reports/evaluation/gradient_reach.csv")
    assert list(reach[0]) == ["model", "seed", "snapshot", "reach"] and len(reach) == 3 * 3 * 3
    for row in reach:
        norms = truth["norms"][row["model"], int(row["seed"])][row["snapshot"]]
        assert float(row["reach"]) == pytest.approx(probes.reach(norms))

    memory = read_csv(project / "reports/evaluation/memory.csv")
    assert list(memory[0]) == ["model", "seed", "filler", "distance", "accuracy"]
    assert sorted((r["model"], int(r["seed"]), r["filler"], int(r["distance"])) for r in memory) == sorted(
        (m, s, f, d) for m in probed for s in FAKE_SEEDS[m] for f in probes.FILLERS for d in DISTANCES)
    assert all(0 <= float(r["accuracy"]) <= 1 for r in memory)


def test_a_memory_distance_beyond_a_window_stops_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_params(tmp_path, memory_distances=[0, 25])  # 10 + 25 > simplernn's maxlen 30
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/stats.json").write_text(json.dumps({"vocabulary_words": NUM_WORDS - 3}))
    with pytest.raises(UserError) as raised:
        run_main(tmp_path, monkeypatch)
    assert str(raised.value) == (
        "params.yaml: evaluate.memory_content = 10 plus the largest evaluate.memory_distances = 25 exceeds "
        "train.experiments.simplernn.maxlen = 30: lower them so that the content still fits in the window")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "mlflow.db").exists()


# End to end: the real pipeline on a tiny slice (shrink(): base.seeds SEEDS, the memory probe fitted).
def test_evaluate_and_report_work_from_partial_results(project: Path):
    # Without the full run's committed results, as in a project that never ran tune.
    run(["git", "rm", "-rq", "--ignore-unmatch", "reports/tuning", "metrics/train", "plots/train"], project)
    shrink(project)
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    committed = (project / "reports/evaluation.json").read_text()  # the full run's, in git
    nothing = run(["python", "-m", "pipeline.evaluate"], project, check=False)
    assert nothing.returncode == 2
    assert nothing.stderr.strip().splitlines()[-1] == (
        "error: no model to evaluate: run `dvc repro train` (and `dvc repro confirm`) first")
    assert (project / "reports/evaluation.json").read_text() == committed  # left as it was

    run(["dvc", "repro", f"train@dense-{SEEDS[0]}", *(f"train@lstm-{seed}" for seed in SEEDS)], project)
    evaluated = run(["python", "-m", "pipeline.evaluate"], project)
    assert f"not evaluated: models/gru-tuned/seed{SEEDS[0]}.keras (run `dvc repro confirm@gru-{SEEDS[0]}`)" \
        in evaluated.stdout
    second = SEEDS[1]  # shrink() trains two seeds
    assert f"not evaluated: models/dense/seed{second}.keras (run `dvc repro train@dense-{second}`)" in evaluated.stdout
    evaluation = json.loads((project / "reports/evaluation.json").read_text())
    assert sorted(evaluation) == ["champion", "dense", "lstm"]
    assert (evaluation["dense"]["n"], evaluation["lstm"]["n"]) == (1, len(SEEDS))
    report = run(["python", "-m", "pipeline.report"], project)
    assert "missing" in report.stdout
    markdown = (project / "reports/comparison.md").read_text()
    assert "## Missing results" in markdown and "`reports/tuning/lstm.json` (stage `tune@lstm` not run)" in markdown
    assert "| 1 | SimpleRNN reaches about 85%, below the dense baseline | not measured |" in markdown
    assert "## Tuning" not in markdown and (project / "reports/comparison.html").stat().st_size > 10_000
