"""Every claim rule on hand-made score distributions, at its exact boundaries."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

from pipeline import aso, claims, distributions

T = stats.t.ppf(0.975, 2)  # the 95% t-interval of a mean of three is mean +- T * sd / sqrt(3)
HIGH, LOW = [0.88, 0.885, 0.89], [0.85, 0.855, 0.86]  # clearly separated: ASO gives 0 one way
MIXED = [0.85, 0.87, 0.89]  # interleaved with MIDDLE: neither is almost larger
MIDDLE = [0.86, 0.87, 0.88]


@pytest.fixture(autouse=True)
def quick_aso(monkeypatch):
    # deepsig's 1000 bootstrap iterations take about 15 s per call here; these distributions need few.
    monkeypatch.setattr(aso, "ASO_ITERATIONS", 5)


def around(mean: float, sd: float) -> list[float]:
    """Three values with this mean and sample standard deviation."""
    return [mean - sd, mean, mean + sd]


def evidence(seeds=(1, 2, 3), **changes) -> claims.Evidence:
    return claims.Evidence(**({"seeds": seeds, "test_accuracy": {}, "pooled_mcnemar": {}, "speed": None,
                               "reach": {}, "memory": {}} | changes))


def test_describe_gives_the_t_interval_and_none_below_two_values():
    d = distributions.describe([0.86, 0.87, 0.88])
    assert (d["n"], d["min"], d["max"]) == (3, 0.86, 0.88)
    assert d["mean"] == pytest.approx(0.87) and d["sd"] == pytest.approx(0.01)
    assert d["ci_low"] == pytest.approx(0.87 - T * 0.01 / math.sqrt(3))
    assert d["ci_high"] == pytest.approx(0.87 + T * 0.01 / math.sqrt(3))
    assert distributions.describe([0.5]) == {"n": 1, "mean": 0.5, "sd": None, "min": 0.5, "max": 0.5, "ci_low": None,
                                      "ci_high": None}
    same = distributions.describe([0.5, 0.5])
    assert (same["sd"], same["ci_low"], same["ci_high"]) == (0.0, 0.5, 0.5)
    for bad in ([], [0.5, float("nan")], [None], [[0.5]]):
        with pytest.raises(ValueError, match="values"):
            distributions.describe(bad)


@pytest.mark.parametrize(("values", "verdict"), [
    ([0.87, 0.87, 0.87], "supported"),  # exactly one point below
    ([0.86, 0.87, 0.88], "supported"),  # mean 0.87 is 0.010000000000000009 away in floats
    ([0.89, 0.89, 0.89], "supported"),  # exactly one point above
    ([0.8699, 0.8699, 0.8699], "refuted"),  # just outside, and so is the interval
    (around(0.87 - T * 0.01 / math.sqrt(3), 0.01), "inconclusive"),  # interval touches the band's lower edge
    (around(0.87 - T * 0.01 / math.sqrt(3) - 1e-6, 0.01), "refuted"),  # and just misses it
    (around(0.89 + T * 0.01 / math.sqrt(3), 0.01), "inconclusive"),  # touches the upper edge
    (around(0.89 + T * 0.01 / math.sqrt(3) + 1e-6, 0.01), "refuted"),
    (around(0.86, 0.03), "inconclusive"),  # mean outside, interval reaching in
    ([0.87], "supported"), ([0.8699], "refuted"), ([0.89], "supported"), ([0.8901], "refuted"),  # one seed
])
def test_level_is_reproduced_within_one_point_and_refuted_when_the_interval_misses_the_band(values, verdict):
    assert claims.level("lstm", values, 0.88).verdict == verdict


def test_level_judges_each_seed_alone():
    part = claims.level("lstm", [0.87, 0.8699, 0.89], 0.88)
    assert part.singles == ("supported", "refuted", "supported")
    assert part.evidence.startswith("lstm 87.7% (mean of 3 seeds, sd 1.2%, 95% CI")


def test_aso_is_zero_for_a_clearly_better_sample_and_high_the_other_way():
    assert claims.aso(HIGH, LOW, seed=42) == 0.0
    assert claims.aso(LOW, HIGH, seed=42) > 0.9
    assert claims.aso(MIDDLE, MIDDLE, seed=42) >= claims.ASO_THRESHOLD
    assert claims.aso([0.87], [0.85], seed=42) == 0.0  # one value each: no spread, the point decides


def test_aso_is_deterministic_for_a_seed_and_leaves_numpys_generator_alone():
    a, b = [0.86, 0.87, 0.84], [0.85, 0.86, 0.85]
    np.random.seed(7)
    expected_draw = np.random.uniform()
    np.random.seed(7)
    first = claims.aso(a, b, seed=42)
    assert np.random.uniform() == expected_draw
    assert claims.aso(a, b, seed=42) == first and 0 < first < 1


@pytest.mark.parametrize("scores", [[0.87], [0.85, 0.87, 0.86], [0.86, 0.86, 0.84, 0.9, 0.86, 0.88, 0.85]])
def test_the_quantile_function_gives_deepsigs_values_bit_for_bit(scores):
    deepsig_aso = aso._deepsig_aso()
    theirs, ours = deepsig_aso.get_quantile_function(scores), aso.quantile_function(scores)
    draws = np.random.default_rng(0).uniform(0, 1, 1000)
    for p in (np.arange(0.001, 1, 0.001), draws, np.array([0.0, 1 / 3, 0.5, 2 / 3, 1.0])):
        assert ours(p).dtype == theirs(p).dtype and np.array_equal(ours(p), theirs(p))


def test_aso_equals_deepsig_run_with_its_own_quantile_function():
    deepsig_aso = aso._deepsig_aso()
    for a, b in ((HIGH, LOW), (MIXED, MIDDLE), ([0.86, 0.87, 0.84], [0.85, 0.86, 0.85])):
        theirs = deepsig_aso.aso(a, b, seed=42, num_jobs=1, show_progress=False, num_bootstrap_iterations=5)
        assert claims.aso(a, b, seed=42) == theirs
    assert deepsig_aso.get_quantile_function is not aso.quantile_function  # put back after each call


def test_deepsig_is_imported_without_tensorflow_which_stays_importable():
    code = ("import importlib.util, sys; from pipeline import claims; claims.aso([0.87, 0.88], [0.85, 0.86], seed=1); "
            "print('tensorflow' in sys.modules, importlib.util.find_spec('tensorflow') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize(("a", "b", "verdict"), [
    (HIGH, LOW, "supported"), (LOW, HIGH, "refuted"), (MIXED, MIDDLE, "inconclusive"),
    (MIDDLE, MIDDLE, "inconclusive"), ([0.87], [0.85], "supported"), ([0.85], [0.87], "refuted"),
    ([0.87], [0.87], "inconclusive"),
])
def test_comparison_follows_almost_stochastic_order_both_ways(a, b, verdict):
    part = claims.comparison("a", "b", a, b, what="test accuracy", show="{:.1%}".format, seed=42)
    assert part.verdict == verdict
    forward, backward = part.statistics["aso"], part.statistics["aso_reverse"]
    assert (forward < claims.ASO_THRESHOLD, backward < claims.ASO_THRESHOLD) == (
        verdict == "supported", verdict == "refuted")


def test_comparison_shows_welch_and_mcnemar_and_judges_each_seed_alone():
    part = claims.comparison("a", "b", [0.87, 0.85, 0.86], [0.86, 0.86, 0.86], what="test accuracy",
                             show="{:.1%}".format, seed=42, mcnemar_p=0.03)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision warning for the constant sample
        welch = stats.ttest_ind([0.87, 0.85, 0.86], [0.86, 0.86, 0.86], equal_var=False).pvalue
    assert part.statistics["welch_p"] == pytest.approx(welch) and part.statistics["mcnemar_p"] == 0.03
    assert "Welch's t-test p = 1" in part.evidence and "McNemar over the pooled seeds p = 0.03" in part.evidence
    assert part.singles == ("supported", "refuted", "inconclusive")
    one = claims.comparison("a", "b", [0.87], [0.85], what="test accuracy", show="{:.1%}".format, seed=42)
    assert one.statistics["welch_p"] is None and "Welch's t-test undefined" in one.evidence
    with pytest.raises(ValueError, match="seeds must pair up"):
        claims.comparison("a", "b", [0.87], [0.85, 0.86], what="test accuracy", show=str, seed=42)


def speed(gru: list[float], lstm: list[float]) -> dict:
    return {"models": ["gru", "lstm"], "seconds": {"gru": gru, "lstm": lstm}}


@pytest.mark.parametrize(("gru", "verdict"), [
    ([8.0, 8.0, 8.0, 8.0, 8.0], "supported"),  # ratio 0.8 every round
    ([12.5, 12.5, 12.5, 12.5, 12.5], "refuted"),
    ([9.0, 11.0, 9.5, 10.5, 10.0], "inconclusive"),  # interval of the log ratio spans 0
    ([10.0, 10.0, 10.0, 10.0, 10.0], "inconclusive"),  # interval is exactly 0: not wholly below it
    ([9.6, 9.7, 9.8, 9.7, 9.6], "supported"),  # a small but consistent gain
])
def test_speed_needs_the_interval_of_the_log_ratio_wholly_on_one_side(gru, verdict):
    part = claims.faster("gru", "lstm", speed(gru, [10.0] * 5))
    assert part.verdict == verdict and len(part.singles) == 5


def test_speed_with_one_round_and_bad_times():
    assert claims.faster("gru", "lstm", speed([9.0], [10.0])).verdict == "supported"
    assert claims.faster("gru", "lstm", speed([11.0], [10.0])).verdict == "refuted"
    part = claims.faster("gru", "lstm", speed([9.0, 11.0], [10.0, 10.0]))
    assert part.singles == ("supported", "refuted") and part.statistics["ratio"] == pytest.approx(math.sqrt(0.99))
    for bad in (speed([9.0, 0.0], [10.0, 10.0]), speed([9.0], [10.0, 10.0])):
        with pytest.raises(ValueError, match="speed seconds of gru and lstm"):
            claims.faster("gru", "lstm", bad)


def test_agreement_counts_seeds_that_alone_give_the_claims_verdict():
    level = claims.Part("l", "supported", "", ("supported", "refuted", "supported"), {})
    beats = claims.Part("c", "supported", "", ("supported", "supported", "inconclusive"), {})
    assert claims.agreement("supported", [level, beats]) == "1 of 3 seeds"
    assert claims.agreement("refuted", [level, beats]) == "1 of 3 seeds"
    assert claims.agreement("inconclusive", [level, beats]) == "1 supported / 1 refuted of 3 seeds"
    rounds = claims.Part("s", "supported", "", ("supported",) * 5, {})  # five speed rounds, three seeds
    assert claims.agreement("supported", [rounds, beats]) == "2 of 3 seeds"
    assert claims.agreement("supported", [claims.Part("x", "supported", "", ("supported",), {})]) == "1 of 1 seed"


def full_evidence(seeds=(1, 2, 3), **changes) -> claims.Evidence:
    """Results in which every claim is supported except claim 1's level."""
    n = len(seeds)
    take = lambda values: values[:n]  # noqa: E731
    reach = {"simplernn": take([0.01, 0.02, 0.015]), "lstm": take([0.5, 0.4, 0.6]), "gru": take([0.3, 0.35, 0.4])}
    accuracy = {"dense": take([0.86, 0.865, 0.862]), "simplernn": take([0.80, 0.81, 0.82]),
                "lstm": take([0.875, 0.88, 0.878]), "gru": take([0.85, 0.855, 0.845]),
                "lstm_maxlen500": take([0.89, 0.885, 0.887])}
    return evidence(seeds, **({
        "test_accuracy": accuracy, "pooled_mcnemar": {("dense", "simplernn"): 1e-20, ("simplernn", "dense"): 1e-20},
        "speed": speed([8.0, 8.2, 8.1, 7.9, 8.0][:max(n, 2)], [10.0, 10.1, 10.2, 9.9, 10.0][:max(n, 2)]),
        "reach": {m: {"init": v, "epoch1": v, "final": v} for m, v in reach.items()},
        "memory": {"simplernn": take([-0.2, -0.15, -0.18]), "lstm": take([-0.01, 0.0, -0.02]),
                   "gru": take([-0.03, -0.02, -0.01])},
        "bootstrap_seed": 42} | changes))


def test_judge_gives_every_claim_a_verdict_a_rule_and_an_agreement():
    judged = claims.judge(full_evidence())
    assert [c.number for c in judged] == [1, 2, 3, 4, 5]
    assert [c.verdict for c in judged] == ["refuted", "supported", "supported", "supported", "supported"]
    assert [c.agreement for c in judged] == ["3 of 3 seeds"] * 5
    assert [len(c.parts) for c in judged] == [2, 2, 2, 2, 6]
    assert "McNemar over the pooled seeds p = 1e-20" in judged[0].evidence
    assert judged[3].rule.startswith("gru trains faster than lstm: in each side-by-side round")
    assert all(c.rule.endswith(claims.COMBINE_RULE) for c in judged)


def test_vanishing_gradients_claim_can_be_refuted_by_any_part():
    base = full_evidence()
    reversed_memory = base.memory | {"gru": [-0.3, -0.25, -0.28]}  # GRU forgets more than SimpleRNN
    claim = claims.judge(full_evidence(memory=reversed_memory))[4]
    assert claim.verdict == "refuted" and [p.verdict for p in claim.parts].count("refuted") == 1
    assert claim.parts[-1].name == "gru beats simplernn in memory retention"
    mixed = base.reach | {"gru": base.reach["gru"] | {"final": MIXED}, "simplernn": base.reach["simplernn"] | {
        "final": MIDDLE}, "lstm": base.reach["lstm"] | {"final": [0.9, 0.91, 0.92]}}
    claim = claims.judge(full_evidence(reach=mixed))[4]
    assert claim.verdict == "inconclusive" and claim.agreement == "1 supported / 1 refuted of 3 seeds"


def test_one_seed_decides_by_its_values():
    judged = claims.judge(full_evidence(seeds=(7,)))
    assert [c.verdict for c in judged] == ["refuted", "supported", "supported", "supported", "supported"]
    assert judged[1].agreement == "1 of 1 seed" and "one seed" in judged[1].evidence
    assert judged[3].agreement == "1 of 1 seed"  # two speed rounds, one seed


def test_missing_results_make_a_claim_not_measured_and_name_what_is_missing():
    full = full_evidence()
    lacking = evidence(test_accuracy={"dense": [0.86, 0.86, 0.86]}, reach={"simplernn": {"epoch1": [1, 1, 1]}})
    judged = claims.judge(lacking)
    assert [c.verdict for c in judged] == ["not measured"] * 5 and [c.agreement for c in judged] == [""] * 5
    assert judged[0].evidence == "no result for test accuracy of simplernn"
    assert judged[3].evidence == "no result for side-by-side speed timing of gru and lstm"
    assert judged[4].evidence == "no result for gradient reach of lstm at epoch1"
    assert all(c.rule and not c.parts for c in judged)
    without_final = {m: {"epoch1": v["epoch1"]} for m, v in full.reach.items()}
    assert claims.judge(evidence(reach=without_final, memory=full.memory))[4].evidence == (
        "no result for gradient reach of lstm at final")


def test_bad_evidence_is_a_value_error():
    with pytest.raises(ValueError, match="test accuracy of simplernn: 2 values for 3 seeds"):
        claims.judge(evidence(test_accuracy={"simplernn": [0.85, 0.85]}))
    with pytest.raises(ValueError, match="seeds"):
        evidence(seeds=(1, 1))
    with pytest.raises(ValueError, match="seeds"):
        evidence(seeds=())
    with pytest.raises(ValueError, match="bootstrap_seed"):
        evidence(bootstrap_seed=-1)


def test_tutorial_numbers_measured_here_are_not_in_the_code():
    assert not hasattr(claims, "TUTORIAL_CODE_HERE")
    assert claims.TUTORIAL_REPORTED["lstm"] == 0.88


def test_format_p_bounds_underflow():
    assert distributions.format_p(0.0) == "< 1e-300" and distributions.format_p(0.0123) == "0.012"
    assert distributions.p_clause(0.0) == "p < 1e-300" and distributions.p_clause(0.0123) == "p = 0.012"
