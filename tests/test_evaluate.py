"""evaluate and report end to end: `dvc repro` of the whole pipeline on a tiny slice, and partial results."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import SMALL_ARCHIVE, run
from tests.test_train import EXPERIMENTS, client, runs_by_name, shrink

ARCHITECTURES = ["dense", "simplernn", "lstm", "gru"]
MODELS = EXPERIMENTS + [f"{a}-tuned" for a in ARCHITECTURES]
METRICS = {"test/accuracy", "test/accuracy_ci_low", "test/accuracy_ci_high", "test/loss", "test/precision",
           "test/recall", "test/f1", "test/roc_auc", "test/tp", "test/tn", "test/fp", "test/fn",
           "test/reviews_per_second", "test/mcnemar_p_vs_best", "parameters"}
TUNE = {"tune.n_trials": 2, "tune.timeout": 0, "tune.warmup_epochs": 0,
        "tune.space": {"maxlen": {"low": 20, "high": 60, "log": False}, "units": {"low": 4, "high": 8, "log": False},
                       "epochs": {"low": 1, "high": 2, "log": False}}}


def test_dvc_repro_runs_every_stage_through_the_report(project: Path):
    shrink(project, **TUNE)
    run(["git", "commit", "-qam", "tiny params"], project)
    result = run(["dvc", "repro"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    assert "Running stage 'evaluate'" in result.stdout and "Running stage 'report'" in result.stdout

    evaluation = json.loads((project / "reports/evaluation.json").read_text())
    assert sorted(evaluation) == sorted(MODELS)
    for name, metrics in evaluation.items():
        assert METRICS <= set(metrics), name
        assert metrics["test/reviews"] == 40 and metrics["test/tp"] + metrics["test/fn"] == 20
        assert metrics["test/accuracy_ci_low"] <= metrics["test/accuracy"] <= metrics["test/accuracy_ci_high"]
        assert len((project / f"reports/evaluation/confusion/{name}.csv").read_text().splitlines()) == 41
        assert (project / f"reports/evaluation/roc/{name}.csv").read_text().startswith("fpr,tpr\n")
    assert len((project / "reports/evaluation/pairwise.csv").read_text().splitlines()) == 1 + 9 * 8 // 2
    assert "simplernn/relative" in (project / "reports/evaluation/gradients.csv").read_text().splitlines()[0]
    run_info = json.loads((project / "reports/evaluation/run.json").read_text())
    assert len(run_info["git.commit"]) == 40 and run_info["machine"]["cores"] >= 1

    # The report: every section, figures as real PNGs, an HTML page that needs nothing from outside.
    markdown = (project / "reports/comparison.md").read_text()
    for heading in ("## Results", "## The tutorial's claims", "## Learning curves", "## Tuning", "## Review lengths"):
        assert heading in markdown
    assert len(re.findall(r"\| (supported|refuted|inconclusive) \|", markdown)) == 5
    assert "Missing results" not in markdown
    figures = sorted((project / "reports/figures").glob("*.png"))
    assert {f.name for f in figures} >= {"test-accuracy.png", "gradients.png", "tuning.png", "curves-lstm.png"}
    for figure in figures:
        data = figure.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
        assert f"](figures/{figure.name})" in markdown
    page = (project / "reports/comparison.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "<script" not in page and "<link" not in page

    # DVC shows the metrics and plots; MLflow has the test metrics in each model's runs.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    assert "test/roc_auc" in json.dumps(shown) and "reports/evaluation.json" in json.dumps(shown)
    plots = run(["dvc", "plots", "show", "-o", str(project / "dvc_plots")], project)
    assert "failed" not in (plots.stdout + plots.stderr).lower()
    index = (project / "dvc_plots/index.html").read_text()
    assert "ROC curve" in index and "Gradient reaching each step" in index
    runs = runs_by_name(project)
    assert runs["lstm"].data.metrics["test/accuracy"] == evaluation["lstm"]["test/accuracy"]
    assert runs["tune-gru"].data.metrics["test/accuracy"] == evaluation["gru-tuned"]["test/accuracy"]
    artifacts = {a.path for a in client(project).list_artifacts(runs["dense"].info.run_id)}
    assert "test_metrics.json" in artifacts

    # Nothing changed: nothing reruns.
    again = run(["dvc", "repro"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    assert "Running stage" not in again.stdout


def test_evaluate_and_report_work_from_partial_results(project: Path):
    # Without the full run's committed results, as in a project that never ran tune.
    run(["git", "rm", "-rq", "reports/tuning", "metrics/train", "plots/train"], project)
    shrink(project)
    run(["dvc", "repro", "prepare"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE))
    committed = (project / "reports/evaluation.json").read_text()  # the full run's, in git
    nothing = run(["python", "-m", "pipeline.evaluate"], project, check=False)
    assert nothing.returncode == 2
    assert nothing.stderr.strip().splitlines()[-1] == (
        "error: no model to evaluate: run `dvc repro train` (and `dvc repro tune`) first")
    assert (project / "reports/evaluation.json").read_text() == committed  # left as it was

    run(["dvc", "repro", "train@dense", "train@lstm"], project)
    evaluated = run(["python", "-m", "pipeline.evaluate"], project)
    assert "not evaluated: models/gru-tuned.keras (run `dvc repro tune@gru`)" in evaluated.stdout
    assert sorted(json.loads((project / "reports/evaluation.json").read_text())) == ["dense", "lstm"]
    report = run(["python", "-m", "pipeline.report"], project)
    assert "missing" in report.stdout
    markdown = (project / "reports/comparison.md").read_text()
    assert "## Missing results" in markdown and "`reports/tuning/lstm.json` (stage `tune@lstm` not run)" in markdown
    assert "| 1 | SimpleRNN reaches about 85%, below the dense baseline | not measured |" in markdown
    assert "## Tuning" not in markdown and (project / "reports/comparison.html").stat().st_size > 10_000
