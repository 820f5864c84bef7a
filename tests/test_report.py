"""The claim verdicts and the report's table builders, on hand-made results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import claims, config
from pipeline.report import (
    claims_table,
    length_table,
    markdown_table,
    model_rows,
    render,
    results_table,
    tuning_table,
)
from tests.conftest import ROOT


def accuracy(value: float) -> dict:
    return {"test/accuracy": value, "test/accuracy_ci_low": value - 0.004, "test/accuracy_ci_high": value + 0.004}


def test_level_is_one_point_either_way():
    results = {"lstm": accuracy(0.872)}
    assert claims.level("lstm", results, 0.88).verdict == "supported"
    assert claims.level("lstm", results, 0.885).verdict == "refuted"


@pytest.mark.parametrize(("better", "worse", "p", "verdict"), [
    (0.87, 0.85, 0.001, "supported"), (0.85, 0.87, 0.001, "refuted"), (0.87, 0.85, 0.2, "inconclusive")])
def test_comparison_needs_a_significant_difference_in_the_claimed_direction(better, worse, p, verdict):
    results = {"a": accuracy(better), "b": accuracy(worse)}
    part = claims.comparison("a", "b", results, {("a", "b"): p, ("b", "a"): p})
    assert part.verdict == verdict and part.p_value == p


@pytest.mark.parametrize(("gru", "verdict"), [(8.0, "supported"), (9.5, "inconclusive"), (11.5, "refuted")])
def test_speed_claims_need_a_ten_percent_margin(gru, verdict):
    assert claims.faster("gru", "lstm", {"gru": gru, "lstm": 10.0}).verdict == verdict


def test_vanishing_gradient_verdict():
    flat, steep = np.linspace(0.5, 1, 10), np.linspace(0.01, 1, 10)
    assert claims.gradient_reach({"simplernn": steep / 20, "lstm": flat, "gru": flat}).verdict == "supported"
    assert claims.gradient_reach({"simplernn": flat, "lstm": steep, "gru": flat}).verdict == "refuted"
    assert claims.gradient_reach({"lstm": flat}).verdict == "inconclusive"


def test_a_claim_is_refuted_by_any_refuted_part_and_missing_models_are_named():
    parts = [claims.Part("supported", "x"), claims.Part("refuted", "y", 0.01)]
    assert claims.combine(1, "claim", parts).verdict == "refuted"
    assert claims.combine(1, "claim", parts[:1]).verdict == "supported"
    judged = claims.judge({"dense": accuracy(0.86)}, {}, {}, {})
    assert [c.verdict for c in judged] == ["not measured"] * 4 + ["inconclusive"]
    assert "no result for simplernn" in judged[0].evidence
    assert list(claims_table(judged).columns) == ["#", "claim", "verdict", "evidence", "McNemar p"]


def test_not_reproduced_names_failed_claims_and_missed_levels():
    from pipeline.report import not_reproduced

    judged = [claims.Claim(1, "c", "refuted", "e", 0.01), claims.Claim(2, "d", "supported", "e", 0.01)]
    sentence = not_reproduced(judged, {"simplernn": accuracy(0.76), "lstm": accuracy(0.875)})
    assert sentence == ("Not reproduced here: claim 1 (refuted). Reported accuracies missed by more than one "
                        "point: simplernn 76.0% vs. 85.0%.")
    assert not_reproduced(judged[1:], {"lstm": accuracy(0.875)}).startswith("Every claim")


def test_format_p_bounds_underflow():
    assert claims.format_p(0.0) == "< 1e-300" and claims.format_p(0.0123) == "0.012"


@pytest.fixture
def params():
    return config.load(ROOT / "params.yaml")


def inputs_for(params) -> dict:
    train = {"val/accuracy": 0.87, "best/val/accuracy": 0.88, "best/epoch": 6, "epoch/seconds": 8.0,
             "total/seconds": 84.0, "parameters": 328353}
    tuning = {"study": "lstm-abc", "best_trial": 1, "best_value": 0.876, "best_params": {"maxlen": 250, "units": 60,
              "epochs": 8}, "default_value": 0.873, "trials": {"complete": 2, "pruned": 1, "failed": 0},
              "epochs_trained": 20, "epochs_unpruned": 26, "epoch_ratio": 0.77, "wall_seconds": 150.2}
    trials = pd.DataFrame({"number": [0, 1], "value": [0.873, 0.876], "state": ["COMPLETE", "COMPLETE"],
                           "duration": ["0 days 00:01:20", "0 days 00:02:00"]})
    return {"train": {"lstm": train}, "history": {}, "tuning": {"lstm": tuning}, "trials": {"lstm": trials},
            "evaluation": {"lstm": accuracy(0.871) | {"test/roc_auc": 0.94, "test/mcnemar_p_vs_best": 1.0,
                                                      "test/reviews_per_second": 9000.0, "parameters": 328353}},
            "pairwise": None, "gradients": None, "stats": None, "run": {}}


def test_results_table_rows_for_default_and_tuned_models(params):
    rows = model_rows(params, inputs_for(params))
    table = results_table(rows)
    assert list(table["model"]) == ["lstm", "lstm-tuned"]
    lstm, tuned = table.iloc[0], table.iloc[1]
    assert lstm["test accuracy [95% CI]"] == "0.8710 [0.8670, 0.8750]" and lstm["s/epoch"] == "8.0"
    assert lstm["best val accuracy (epoch)"] == "0.8800 (6)" and lstm["parameters"] == "328,353"
    # The tuned row takes its settings from the study and its time from the best trial (120 s over 8 epochs).
    assert (tuned["maxlen"], tuned["units"], tuned["epochs"]) == (250, 60, 8)
    assert tuned["s/epoch"] == "15.0" and tuned["test accuracy [95% CI]"] == "not evaluated"


def test_tuning_and_length_tables(params):
    table = tuning_table(inputs_for(params)["tuning"])
    row = table.iloc[0]
    assert row["gain (points)"] == "+0.30" and row["epochs trained / unpruned"] == "20 / 26 (0.77)"
    assert row["best settings"] == "epochs 8, maxlen 250, units 60"
    stats = {"splits": {"test": {"reviews": 25000, "length": {"mean": 229.3, "p50": 173, "p90": 444, "p99": 897,
                                                              "max": 2247}, "truncated_fraction": {"200": 0.4059}}}}
    lengths = length_table(stats)
    assert lengths.iloc[0]["cut at maxlen 200"] == "40.6%" and lengths.iloc[0]["longest"] == "2,247"


def test_render_embeds_figures_and_escapes_text():
    table = pd.DataFrame({"a|b": ["x|y"], "c": ["<b>"]})
    markdown, page = render([("h1", "T"), ("p", "1 < 2"), ("table", table), ("figure", "f.png", "cap")],
                            {"f.png": b"\x89PNG fake"})
    assert "| a\\|b | c |" in markdown and "x\\|y" in markdown and "![cap](figures/f.png)" in markdown
    assert markdown_table(table).splitlines()[1] == "|---|---|"
    assert "1 &lt; 2" in page and "&lt;b&gt;" in page and 'src="data:image/png;base64,' in page
