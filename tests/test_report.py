"""The report stage on hand-made result files (no training): its tables, the claims' evidence, missing inputs
named, and the rendering. The claims' rules have their own tests (tests/test_claims.py)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import claims, config, figures, rendering, report, tables
from pipeline.paths import (
    EVALUATION,
    EVALUATION_RUN,
    GRADIENT_REACH,
    GRADIENTS,
    MEMORY,
    PAIRWISE,
    REPLICATES,
    SPEED,
    STATS,
    SUMMARY,
    TUTORIAL_REFERENCE,
    train_gradients_path,
    train_history_path,
    train_metrics_path,
    tuning_report_path,
)
from tests.conftest import ROOT

T_975 = {1: 12.706, 2: 4.303, 3: 3.182}  # Student's t quantiles for a 95% interval, by degrees of freedom

THREADS = {"intra_op": 0, "inter_op": 0, "cores_available": 2}  # as speed.json records TensorFlow defaults


def distribution(values: list[float]) -> dict:
    mean = statistics.mean(values)
    if len(values) == 1:
        return {"values": values, "mean": mean, "sd": None, "min": mean, "max": mean, "ci_low": None, "ci_high": None}
    sd = statistics.stdev(values)
    half = T_975[len(values) - 1] * sd / math.sqrt(len(values))
    return {"values": values, "mean": mean, "sd": sd, "min": min(values), "max": max(values),
            "ci_low": mean - half, "ci_high": mean + half}


SETTINGS = {"architecture": "lstm", "maxlen": 200, "units": 32, "embedding_dim": 32, "dropout": 0.0, "epochs": 10}
SUMMARY_ = {
    "lstm": {"kind": "default", "settings": SETTINGS, "n": 3, "seeds": [1, 2, 3],
             "test/accuracy": distribution([0.86, 0.87, 0.88]), "val/accuracy": distribution([0.87, 0.88, 0.875]),
             "parameters": 328353, "test/reviews_per_second": 9000.0},
    # Confirmed with one seed only (base.seeds: [1]): no spread, no interval.
    "lstm-tuned": {"kind": "tuned", "settings": SETTINGS | {"maxlen": 250, "units": 60}, "n": 1, "seeds": [1],
                   "test/accuracy": distribution([0.871]), "val/accuracy": distribution([0.876]),
                   "parameters": 600000, "test/reviews_per_second": 8000.0},
}
REPLICATES_ = pd.DataFrame({
    "model": ["lstm"] * 3 + ["lstm-tuned"], "kind": ["default"] * 3 + ["tuned"], "seed": [1, 2, 3, 1],
    "val/accuracy": [0.87, 0.88, 0.875, 0.876], "best/val/accuracy": [0.87, 0.88, 0.875, None],
    "last/val/accuracy": [0.85, 0.86, 0.87, None], "kept/epoch": [4, 6, 9, None],
    "test/accuracy": [0.86, 0.87, 0.88, 0.871], "test/loss": 0.3, "test/roc_auc": 0.94, "test/f1": 0.87})


def test_results_table_summarises_each_model_over_its_seeds():
    table = tables.results_table(SUMMARY_, REPLICATES_, {"lstm": 8.04, "lstm-tuned": 15.0})
    lstm, tuned = table.iloc[0], table.iloc[1]
    assert list(table["model"]) == ["lstm", "lstm-tuned"]
    assert lstm["test accuracy, mean ± sd"] == "0.8700 ± 0.0100" and lstm["95% CI of the mean"] == "[0.8452, 0.8948]"
    assert lstm["min–max"] == "0.8600–0.8800" and lstm["per seed"] == "1: 0.8600; 2: 0.8700; 3: 0.8800"
    assert (lstm["val accuracy, kept epoch"], lstm["val accuracy, best epoch"], lstm["val accuracy, last epoch"]) == (
        "0.8750", "0.8750", "0.8600")
    assert lstm["settings"] == "lstm, maxlen 200, units 32, embedding_dim 32, dropout 0, epochs 10"
    assert (lstm["seeds"], lstm["s/epoch (median)"], lstm["parameters"]) == (3, "8.0", "328,353")
    # One seed: no spread, no interval; a value not recorded is a dash.
    assert (tuned["test accuracy, mean ± sd"], tuned["95% CI of the mean"]) == ("0.8710", "—")
    assert (tuned["val accuracy, best epoch"], tuned["per seed"]) == ("—", "1: 0.8710")
    assert tables.settings_text({"architecture": "dense", "maxlen": 200, "units": 32}) == "dense, maxlen 200"


REFERENCE = {"date": "2026-11-27T08:00:00+00:00", "seeds": [1, 2, 3], "epochs": 10, "limit": None,
             "protocol": "The tutorial's code ...",
             "models": {"lstm": {"maxlen": 200, "head": "Dense(1, sigmoid)", "test/accuracy": [0.865, 0.87, 0.875],
                                 "val/accuracy/last": [0.86, 0.868, 0.87], "val/accuracy/best": [0.87, 0.87, 0.88],
                                 "epoch/seconds": [8.1, 8.3, 8.2]},
                        "gru": {"maxlen": 200, "head": "Dense(1), no sigmoid (as published)",
                                "test/accuracy": [0.84, 0.85, 0.845], "val/accuracy/last": [0.85, 0.85, 0.85],
                                "val/accuracy/best": [0.87, 0.87, 0.87], "epoch/seconds": [10.9, 11, 11.1]}}}


def test_tutorial_table_reads_the_reference_file(tmp_path: Path):
    path = tmp_path / "tutorial-reference.json"
    path.write_text(json.dumps(REFERENCE))
    table = tables.tutorial_table(SUMMARY_, report.as_json(path)).set_index("model")
    assert list(table.index) == ["lstm", "gru", "dense", "simplernn", "lstm_maxlen500"]
    assert table.loc["lstm", "tutorial reports"] == "88.0%"
    assert table.loc["lstm", "tutorial's code here: test"] == "87.0% ± 0.5 (3 seeds)"
    assert table.loc["lstm", "this pipeline: test"] == "87.0% ± 1.0 (3 seeds)"
    assert table.loc["gru", "its output layers"] == "Dense(1), no sigmoid (as published)"
    assert table.loc["gru", "tutorial reports"] == "—" and table.loc["gru", "this pipeline: test"] == "not evaluated"
    assert table.loc["dense", "tutorial's code here: test"] == "not measured"
    note = tables.reference_note(REFERENCE)
    assert "validation_split=0.2" in note and "last epoch" in note and "without a sigmoid" in note
    assert "smoke" in tables.reference_note(REFERENCE | {"limit": 200})
    assert "reports/tutorial-reference.json is missing" in tables.reference_note(None)
    assert set(tables.tutorial_table({}, None)["tutorial's code here: test"]) == {"not measured"}


def test_speed_table_gives_each_rounds_ratio_to_lstm():
    speed = {"models": ["lstm", "gru"], "rounds": 3, "reviews": 5000, "maxlen": {"lstm": 200, "gru": 200},
             "seconds": {"lstm": [10.0, 10.0, 12.0], "gru": [8.0, 11.0, 9.0]}, "threads": THREADS}
    table = tables.speed_table(speed).set_index("model")
    assert table.loc["gru", "s/epoch (median)"] == "9.00" and table.loc["gru", "min–max"] == "8.00–11.00"
    assert table.loc["gru", "ratio to lstm, per round"] == "0.800, 1.100, 0.750"
    assert table.loc["gru", "ratio to lstm: median (min–max)"] == "0.800 (0.750–1.100)"
    assert "ratio to lstm, per round" not in tables.speed_table(speed | {"models": ["gru"]})
    assert "5,000 training reviews, 3 timed rounds" in tables.speed_note(speed)
    assert "intra-op default, inter-op default, 2 cores available" in tables.speed_note(speed)


def test_not_reproduced_in_plain_words():
    judged = [SimpleNamespace(number=1, text="SimpleRNN reaches about 85%", verdict="refuted"),
              SimpleNamespace(number=2, text="LSTM reaches about 88%", verdict="supported")]
    summary = {"simplernn": {"n": 3, "test/accuracy": {"mean": 0.8389}},
               "lstm": {"n": 3, "test/accuracy": {"mean": 0.87}}}  # exactly one point off: not missed
    assert tables.not_reproduced(judged, summary) == (
        "What is not reproduced: claim 1, “SimpleRNN reaches about 85%” (refuted). Reported accuracies that the "
        "mean over seeds misses by more than one point: simplernn 83.9% (mean of 3) vs. about 85.0%.")
    assert tables.not_reproduced(judged[1:], {"lstm": summary["lstm"]}).endswith("holds here.")


def test_tuning_verdicts_set_the_tuned_distribution_beside_the_default_and_the_best_trial(monkeypatch):
    monkeypatch.setattr(claims, "aso", lambda a, b, seed: 0.0 if np.mean(a) > np.mean(b) else 1.0)
    evidence = claims.Evidence(seeds=(1, 2, 3), test_accuracy={"lstm": [0.86, 0.87, 0.88],
                                                               "lstm-tuned": [0.88, 0.885, 0.89],
                                                               "gru": [0.86, 0.87, 0.88]},
                               pooled_mcnemar={}, speed=None, reach={}, memory={})
    judged = claims.tuning_helps(evidence, ["lstm", "gru"])
    assert [(c.text, c.verdict) for c in judged] == [("tuning helps lstm", "supported"),
                                                     ("tuning helps gru", "not measured")]
    assert "lstm-tuned 88.5% vs. lstm 87.0% (means of 3)" in judged[0].evidence
    assert judged[0].agreement == "3 of 3 seeds" and "no result for test accuracy of gru-tuned" in judged[1].evidence
    summary = {"lstm": SUMMARY_["lstm"], "lstm-tuned": SUMMARY_["lstm"] | {"test/accuracy": distribution(
        [0.88, 0.885, 0.89]), "val/accuracy": distribution([0.87, 0.87, 0.87])}}
    study = {"best_value": 0.8912, "best_params": {"units": 60, "pooling": "max", "learning_rate": 0.002}}
    table = tables.tuning_verdicts(judged, summary, {"lstm": study}).set_index("architecture")
    assert table.loc["lstm", "tuned settings"] == "learning_rate 0.002, pooling max, units 60"
    assert table.loc["lstm", "default: test, mean ± sd"] == "0.8700 ± 0.0100"
    assert table.loc["lstm", "tuned: test, mean ± sd"] == "0.8850 ± 0.0050"
    # The best trial's own score (one seed, the maximum over the trials) beside what the seeds give.
    assert (table.loc["lstm", "best trial's val (1 seed)"], table.loc["lstm", "tuned: val, mean over seeds"]) == (
        "0.8912", "0.8700")
    assert (table.loc["gru", "verdict"], table.loc["gru", "tuned: test, mean ± sd"]) == ("not measured", "—")
    paragraph = tables.tuning_paragraph(judged)
    assert "winner's curse" in paragraph and "tuning helps lstm: supported; tuning helps gru: not measured" in paragraph


def test_render_embeds_figures_and_escapes_text():
    table = pd.DataFrame({"a|b": ["x|y"], "c": ["<b>"]})
    markdown, page = report.render([("h1", "T"), ("p", "1 < 2"), ("table", table), ("figure", "f.png", "cap")],
                                   {"f.png": b"\x89PNG fake"})
    assert "| a\\|b | c |" in markdown and "x\\|y" in markdown and "![cap](figures/f.png)" in markdown
    assert rendering.markdown_table(table).splitlines()[1] == "|---|---|"
    assert "1 &lt; 2" in page and "&lt;b&gt;" in page and 'src="data:image/png;base64,' in page


# A whole result tree, as the stages would leave it -------------------------------------------------------


@pytest.fixture
def params(monkeypatch):
    # deepsig's bootstrap (and its TensorFlow import) takes a minute here; tests/test_claims.py covers it.
    monkeypatch.setattr(claims, "aso", lambda a, b, seed: 0.0 if np.mean(a) > np.mean(b) else 1.0)
    return config.load(ROOT / "params.yaml")


def write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def write_results(params, skip: tuple[str, ...] = ()) -> None:
    """Every input of the report in the current folder, except the replicates of the experiments in ``skip``
    and every file of the evaluate, speed and tune stages when those names are in ``skip``."""
    seeds, rng = params.base.seeds, np.random.default_rng(0)
    accuracy = {"dense": 0.86, "simplernn": 0.80, "lstm": 0.87, "gru": 0.86, "lstm_maxlen500": 0.88}
    accuracy |= {f"{a}-tuned": accuracy[a] + 0.01 for a in params.tune.architectures}
    models = dict(params.train.experiments)
    if "tune" not in skip:  # each study's best configuration, confirmed with every seed (confirm stage)
        models |= {f"{a}-tuned": params.train.experiments[a] for a in params.tune.architectures}
    for name, experiment in models.items():
        for number, seed in enumerate(seeds):
            if name in skip:
                continue
            write(train_metrics_path(name, seed), {"kept/epoch": 2 + number, "epoch/seconds": 4.0 + number,
                                                   "val/accuracy": accuracy[name]})
            epochs = np.arange(1, 5)
            write(train_history_path(name, seed), pd.DataFrame({
                "epoch": epochs, "train/accuracy": 0.7 + 0.05 * epochs, "train/loss": 0.6 - 0.1 * epochs,
                "val/accuracy": accuracy[name] + rng.normal(0, 0.01, 4), "val/loss": 0.4 + rng.normal(0, 0.02, 4),
                "epoch/seconds": 4.0}).to_csv(index=False))
            steps = np.arange(experiment.maxlen - 1, -1, -1)
            decay = 0.97 if experiment.architecture == "simplernn" else 0.999
            write(train_gradients_path(name, seed), pd.DataFrame({
                "steps_before_end": steps, "init": decay ** steps, "epoch1": 2 * decay ** steps,
                "final": 3 * decay ** steps * (1 + 0.1 * number)}).to_csv(index=False))
    if "evaluate" not in skip:
        summary, replicates = {}, []
        for name in params.train.experiments:
            if name not in skip:
                test = [accuracy[name] + 0.005 * (i - 1) for i in range(len(seeds))]
                summary[name] = {"kind": "default", "settings": vars(params.train.experiments[name]),
                                 "n": len(seeds), "seeds": list(seeds), "test/accuracy": distribution(test),
                                 "val/accuracy": distribution(test), "parameters": 1000}
                replicates += [{"model": name, "kind": "default", "seed": s, "val/accuracy": a,
                                "best/val/accuracy": a, "last/val/accuracy": a - 0.01, "kept/epoch": 3,
                                "test/accuracy": a} for s, a in zip(seeds, test, strict=True)]
        if "tune" not in skip:  # each study's best configuration over the same seeds
            for architecture in params.tune.architectures:
                test = [accuracy[f"{architecture}-tuned"] + 0.004 * (i - 1) for i in range(len(seeds))]
                summary[f"{architecture}-tuned"] = {
                    "kind": "tuned", "settings": vars(params.train.experiments[architecture]) | {"maxlen": 250},
                    "n": len(seeds), "seeds": list(seeds), "test/accuracy": distribution(test),
                    "val/accuracy": distribution(test), "parameters": 2000}
                replicates += [{"model": f"{architecture}-tuned", "kind": "tuned", "seed": s, "val/accuracy": a,
                                "best/val/accuracy": a, "last/val/accuracy": a - 0.01, "kept/epoch": 3,
                                "test/accuracy": a} for s, a in zip(seeds, test, strict=True)]
        write(SUMMARY, summary)
        write(REPLICATES, pd.DataFrame(replicates).to_csv(index=False))
        write(EVALUATION, {"champion": {"model": "lstm_maxlen500", "val/accuracy": 0.88, "test/accuracy": 0.88}})
        names = list(summary)
        write(PAIRWISE, pd.DataFrame([{"model_a": a, "model_b": b, "only_a": 10, "only_b": 5, "mcnemar_p": 0.01}
                                      for i, a in enumerate(names) for b in names[i + 1:]]).to_csv(index=False))
        probed = [n for n in ("dense", "simplernn", "lstm", "gru") if n in summary]
        write(GRADIENTS, "steps_before_end," + ",".join(f"{m}/{s}" for m in probed for s in ("init", "epoch1",
                                                                                              "final")) + "\n")
        write(GRADIENT_REACH, pd.DataFrame([
            {"model": m, "seed": s, "snapshot": snapshot, "reach": 0.05 * s if m == "simplernn" else 0.9}
            for m in probed for snapshot in ("init", "epoch1", "final") for s in reversed(seeds)]).to_csv(index=False))
        write(MEMORY, pd.DataFrame([
            {"model": m, "seed": s, "filler": f, "distance": d, "accuracy": 0.85 - (0.002 if m == "simplernn" else
                                                                                    0.0005) * d * s}
            for m in probed for s in seeds for f in ("pad", "the") for d in (0, 25, 50)]).to_csv(index=False))
        write(EVALUATION_RUN, {"date": "2026-11-27T05:13:31Z", "machine": {"cpu": "AMD EPYC", "cores": 2,
                                                                           "memory_gib": 23.5, "gpus": []},
                               "data.sha256": "5a318e" * 10, "git.commit": "18a00e1b" * 5, "git.dirty": False})
    if "speed" not in skip:
        write(SPEED, {"models": ["dense", "simplernn", "lstm", "gru"], "rounds": 2, "reviews": 5000,
                      "maxlen": {"dense": 200, "simplernn": 200, "lstm": 200, "gru": 200},
                      "seconds": {"dense": [1.0, 1.1], "simplernn": [4.0, 4.2], "lstm": [8.0, 8.4],
                                  "gru": [10.0, 10.2]}, "threads": THREADS, "deterministic": True})
    write(TUTORIAL_REFERENCE, REFERENCE)
    write(STATS, {"splits": {"test": {"reviews": 25000, "length": {"mean": 229.3, "p50": 173, "p90": 444,
                                                                   "p99": 897, "max": 2247},
                                      "truncated_fraction": {"200": 0.4059}}}})
    if "tune" not in skip:
        for architecture in params.tune.architectures:
            write(tuning_report_path(architecture), {
                "study": f"{architecture}-abc", "best_trial": 1, "best_value": 0.876,
                "best_params": {"maxlen": 250, "units": 60, "epochs": 8}, "default_value": 0.873,
                "trials": {"complete": 2, "pruned": 1, "failed": 0}, "epochs_trained": 20, "epochs_unpruned": 26,
                "epoch_ratio": 0.77, "wall_seconds": 150.2})
            write(tuning_report_path(architecture, "-trials.csv"), pd.DataFrame({
                "number": [0, 1], "value": [0.873, 0.876], "state": ["COMPLETE", "COMPLETE"],
                "params_maxlen": [200, 250], "params_units": [32, 60],
                "duration": ["0 days 00:01:20", "0 days 00:02:00"]}).to_csv(index=False))


def test_evidence_is_read_from_the_files_in_seed_order(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(params)
    inputs, missing = report.read_inputs(params)
    assert missing == []
    evidence = report.evidence(params, inputs)
    assert evidence.seeds == (1, 2, 3) and evidence.bootstrap_seed == params.base.seed
    assert evidence.test_accuracy["lstm"] == pytest.approx([0.865, 0.87, 0.875])
    assert evidence.test_accuracy["lstm-tuned"] == pytest.approx([0.876, 0.88, 0.884])  # confirmed over the seeds
    assert evidence.pooled_mcnemar["lstm", "dense"] == evidence.pooled_mcnemar["dense", "lstm"] == 0.01
    assert list(evidence.reach["simplernn"]) == ["init", "epoch1", "final"]
    assert evidence.reach["simplernn"]["final"] == pytest.approx([0.05, 0.1, 0.15])  # written in reverse
    # Retention: accuracy at the largest distance (50) minus at 0, filler "pad", per seed in base.seeds order.
    assert evidence.memory["simplernn"] == pytest.approx([-0.1, -0.2, -0.3])
    assert evidence.speed["rounds"] == 2
    # A model without every seed (a replicate missing) gives the claims no per-seed list.
    inputs["replicates"] = inputs["replicates"][~((inputs["replicates"]["model"] == "gru")
                                                  & (inputs["replicates"]["seed"] == 2))]
    assert "gru" not in report.evidence(params, inputs).test_accuracy
    assert report.seconds_per_epoch(inputs) == pytest.approx(
        {n: 5.0 for n in params.train.experiments} | {f"{a}-tuned": 5.0 for a in params.tune.architectures})


def test_the_report_renders_every_section_from_complete_results(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(params)
    blocks, figure_data = report.build(params, *report.read_inputs(params))
    markdown, page = report.render(blocks, figure_data)
    headings = [b[1] for b in blocks if b[0] == "h2"]
    assert headings == ["Results", "The tutorial's claims", "Does tuning help?", "Against the tutorial's numbers",
                        "Vanishing gradients (claim 5)", "Training speed (claim 4)", "Learning curves", "Tuning",
                        "Review lengths"]
    assert "highest validation accuracy" in markdown and "ModelCheckpoint(save_best_only=True)" in markdown
    assert "3 seeds (1, 2, 3; base.seeds)" in markdown and "git commit 18a00e1b18" in markdown
    assert "| lstm | default | lstm, maxlen 200, units 32" in markdown
    assert "| # | claim | verdict | rule | evidence | single-seed agreement |" in markdown
    assert "What is not reproduced:" in markdown and "winner's curse" in markdown
    assert "| lstm-tuned | tuned | lstm, maxlen 250, units 32" in markdown and "| 1: 0.8760; 2: 0.8800; 3: 0.8840 |" \
        in markdown
    # Each study's verdict, by the comparison rule on the tuned and default distributions (aso stubbed above).
    assert "| lstm | epochs 8, maxlen 250, units 60 | 0.8700 ± 0.0050 | 0.8800 ± 0.0040 | 0.8760 | 0.8800 | " \
           "supported |" in markdown
    assert "87.0% ± 0.5 (3 seeds)" in markdown  # the tutorial's code, from the reference file
    curves = [*params.train.experiments, *(f"{a}-tuned" for a in params.tune.architectures)]
    assert set(figure_data) == {"test-accuracy.png", "gradients.png", "memory.png", "tuning.png"} | {
        f"curves-{name}.png" for name in curves}
    for name, data in figure_data.items():
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and f"](figures/{name})" in markdown
    assert page.count('src="data:image/png;base64,') == len(figure_data) and "<script" not in page


def test_missing_inputs_are_named_and_their_sections_left_out(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(params, skip=("gru", "speed", "tune", "evaluate"))
    (tmp_path / TUTORIAL_REFERENCE).unlink()
    inputs, missing = report.read_inputs(params)
    assert ("`metrics/train/gru/seed2.json`, `plots/train/gru/seed2.csv`, `metrics/train/gru/seed2-gradients.csv` "
            "(stage `train@gru-2` not run)") in missing
    assert "`reports/speed.json` (stage `speed` not run)" in missing
    assert "`reports/tuning/lstm.json` (stage `tune@lstm` not run)" in missing
    assert "`reports/evaluation/summary.json` (stage `evaluate` not run)" in missing
    assert "`reports/tutorial-reference.json` (`python bench/tutorial_reference.py` not run)" in missing
    blocks, figure_data = report.build(params, inputs, missing)
    markdown, _ = report.render(blocks, figure_data)
    assert "## Missing results" in markdown and "`reports/speed.json` (stage `speed` not run)" in markdown
    for absent in ("## Results", "## Against the tutorial's numbers", "## Training speed", "## Tuning"):
        assert absent not in markdown
    assert "| 1 | " in markdown and "not measured" in markdown  # the claims are still listed, unjudged
    # The train stage's per-replicate files alone still draw the gradient figure and the learning curves.
    assert "gradients.png" in figure_data and "curves-gru.png" not in figure_data and "curves-lstm.png" in figure_data


def test_a_table_from_an_older_evaluate_is_named_not_misread(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(params)
    # The layout before replicates: one p_value column and no pooled counts.
    (tmp_path / PAIRWISE).write_text("model_a,model_b,accuracy_a,accuracy_b,only_a,only_b,p_value\n"
                                     "lstm,gru,0.86,0.87,10,12,0.83\n")
    inputs, missing = report.read_inputs(params)
    assert inputs["pairwise"] is None
    assert ("`reports/evaluation/pairwise.csv` (written by an older evaluate, without the columns mcnemar_p: "
            "rerun stage `evaluate`)") in missing
    markdown, _ = report.render(*report.build(params, inputs, missing))
    assert "rerun stage `evaluate`" in markdown and "## The tutorial's claims" in markdown


def test_learning_curves_of_one_run_keep_the_train_stages_signature():
    rows = [{"epoch": e, "train/accuracy": 0.8, "train/loss": 0.4, "val/accuracy": 0.8, "val/loss": 0.4}
            for e in (1, 2)]
    assert rendering.png(figures.learning_curves(rows, "lstm seed 1")).startswith(b"\x89PNG")
