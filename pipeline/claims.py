"""The tutorial's claims, judged on score distributions over seeds: pure functions for the report stage.

Single runs of these models differ by a point or more from seed to seed, so every verdict rests on the
distribution over the replicate seeds (Reimers & Gurevych 2017). A claim is split into parts:
- a level ("about 88%") compares the mean test accuracy with the claimed value, and its 95% t-interval
  with a band of one point either side;
- a comparison ("A beats B") runs Almost Stochastic Order (Dror et al. 2019; deepsig) both ways, with
  Welch's t-test and the pooled McNemar p shown beside it;
- a speed claim uses the ratios of epoch times timed side by side, round by round, in one process.
A claim is refuted if any part is, supported if all are, inconclusive otherwise. Each part is also judged
on every seed alone, to show how often a single-seed study would have reached the claim's verdict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.aso import ASO_ITERATIONS, aso
from pipeline.distributions import describe, finite_numbers, p_clause

TOLERANCE = 0.01  # "about X" means within one point of X
EPSILON = 1e-9  # float slack: a mean of 0.87 (stored as 0.8699999...) is within one point of 0.88
ASO_THRESHOLD = 0.2  # eps_min below this: A is almost stochastically larger than B (deepsig's advice)

# The tutorial's reported test accuracy (../shared/docs/TUTORIAL.md). What its code gives on this
# machine is measured, not written here: reports/tutorial-reference.json.
TUTORIAL_REPORTED = {"dense": 0.875, "simplernn": 0.85, "lstm": 0.88, "lstm_maxlen500": 0.885}

COMBINE_RULE = "The claim is refuted if any part is refuted, supported if all parts are, inconclusive otherwise."


@dataclass(frozen=True)
class Evidence:
    seeds: tuple[int, ...]  # base.seeds, the order of every per-seed list
    test_accuracy: dict[str, list[float]]  # model -> per-seed test accuracy
    pooled_mcnemar: dict[tuple[str, str], float]  # (a, b) and (b, a) -> p
    speed: dict | None  # reports/speed.json content
    reach: dict[str, dict[str, list[float]]]  # model -> snapshot -> per-seed reach
    memory: dict[str, list[float]]  # model -> per-seed retention = acc(max distance) - acc(0), filler "pad"
    bootstrap_seed: int = 0  # base.seed, for deepsig's aso

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) for s in self.seeds):
            raise ValueError(f"seeds: expected distinct integers, at least one, got {self.seeds!r}")
        # deepsig seeds numpy with bootstrap_seed + 1 .. + ASO_ITERATIONS, which must stay below 2**32.
        if not isinstance(self.bootstrap_seed, int) or not 0 <= self.bootstrap_seed < 2**32 - ASO_ITERATIONS:
            raise ValueError(f"bootstrap_seed: expected an integer from 0 to {2**32 - ASO_ITERATIONS - 1}, "
                             f"got {self.bootstrap_seed!r}")


@dataclass(frozen=True)
class Part:
    name: str  # what this part claims, e.g. "dense beats simplernn in test accuracy"
    verdict: str  # supported, refuted, inconclusive
    evidence: str
    singles: tuple[str, ...]  # the verdict on each seed (speed: each round) alone
    statistics: dict[str, float | None]  # the numbers the verdict rests on, for tables


@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    verdict: str  # supported, refuted, inconclusive, not measured
    rule: str
    evidence: str
    agreement: str  # how many seeds alone give the claim's verdict; "" when not measured
    parts: tuple[Part, ...] = ()


class _Missing(Exception):
    """A result a claim needs is absent: the claim is not measured."""


def _series(values: list[float] | None, what: str, seeds: tuple[int, ...]) -> np.ndarray:
    if values is None:
        raise _Missing(what)
    array = finite_numbers(values, what)
    if array.size != len(seeds):
        raise ValueError(f"{what}: {array.size} values for {len(seeds)} seeds {list(seeds)}")
    return array


def _by_point(difference: float) -> str:
    return "supported" if difference > 0 else "refuted" if difference < 0 else "inconclusive"


def level_rule(model: str, claimed: float) -> str:
    return (f"{model} about {claimed:.1%}: supported (reproduced) when the mean test accuracy over the seeds is "
            f"within one point of {claimed:.1%}, refuted when the 95% t-interval of that mean lies wholly outside "
            f"{claimed - TOLERANCE:.1%} to {claimed + TOLERANCE:.1%}, inconclusive otherwise; with one seed, "
            "its value alone decides.")


def level(model: str, values: Sequence[float], claimed: float) -> Part:
    d = describe(values)
    singles = tuple("supported" if abs(x - claimed) <= TOLERANCE + EPSILON else "refuted" for x in values)
    if abs(d["mean"] - claimed) <= TOLERANCE + EPSILON:
        verdict = "supported"
    elif d["n"] == 1 or d["ci_high"] < claimed - TOLERANCE - EPSILON or d["ci_low"] > claimed + TOLERANCE + EPSILON:
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    spread = ("one seed" if d["n"] == 1 else
              f"mean of {d['n']} seeds, sd {d['sd']:.1%}, 95% CI {d['ci_low']:.1%} to {d['ci_high']:.1%}")
    return Part(f"{model} about {claimed:.1%}", verdict, f"{model} {d['mean']:.1%} ({spread}) vs. claimed "
                f"~{claimed:.1%}", singles, {"mean": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]})


def comparison_rule(better: str, worse: str, what: str) -> str:
    return (f"{better} beats {worse} in {what}: supported when Almost Stochastic Order over the seeds gives "
            f"eps_min({better}, {worse}) < {ASO_THRESHOLD}, refuted when eps_min({worse}, {better}) < "
            f"{ASO_THRESHOLD}, inconclusive otherwise (also when both are).")


def comparison(better: str, worse: str, a: Sequence[float], b: Sequence[float], *, what: str,
               show: Callable[[float], str], seed: int, mcnemar_p: float | None = None) -> Part:
    """The claim that ``better`` scores higher than ``worse``; ``a`` and ``b`` are their per-seed scores."""
    a, b = finite_numbers(a, f"{what} of {better}"), finite_numbers(b, f"{what} of {worse}")
    if a.size != b.size:
        raise ValueError(f"{what}: {a.size} values of {better} and {b.size} of {worse}; seeds must pair up")
    forward, backward = aso(a, b, seed), aso(b, a, seed)
    # A cannot be almost larger than B and B than A at once: if both eps_min are small, the test says nothing.
    verdict = ("supported" if forward < ASO_THRESHOLD <= backward else
               "refuted" if backward < ASO_THRESHOLD <= forward else "inconclusive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about one seed or no spread; its nan says the same
        welch = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    welch_text = f"Welch's t-test {p_clause(welch)}" if math.isfinite(welch) else "Welch's t-test undefined"
    mcnemar_text = "" if mcnemar_p is None else f"; McNemar over the pooled seeds {p_clause(mcnemar_p)}"
    evidence = (f"{what}: {better} {show(float(np.mean(a)))} vs. {worse} {show(float(np.mean(b)))} "
                f"(means of {len(a)}); ASO eps_min {forward:.2f} for {better} over {worse}, {backward:.2f} the "
                f"other way; {welch_text}{mcnemar_text}")
    singles = tuple(_by_point(x - y) for x, y in zip(a, b, strict=True))
    return Part(f"{better} beats {worse} in {what}", verdict, evidence, singles,
                {"aso": forward, "aso_reverse": backward, "welch_p": welch if math.isfinite(welch) else None,
                 "mcnemar_p": mcnemar_p})


def speed_rule(quick: str, slow: str) -> str:
    return (f"{quick} trains faster than {slow}: in each side-by-side round, the ratio of {quick}'s epoch time "
            f"to {slow}'s; supported when the 95% t-interval of the mean log ratio lies wholly below 0 (ratio "
            "below 1), refuted when wholly above, inconclusive otherwise; with one round, its ratio alone decides.")


def faster(quick: str, slow: str, speed: dict | None) -> Part:
    """The claim that ``quick`` trains faster than ``slow``, from reports/speed.json's alternating rounds."""
    seconds = (speed or {}).get("seconds", {})
    if quick not in seconds or slow not in seconds:
        raise _Missing(f"side-by-side speed timing of {quick} and {slow}")
    q = finite_numbers(seconds[quick], f"speed seconds of {quick}")
    s = finite_numbers(seconds[slow], f"speed seconds of {slow}")
    if q.size != s.size or (q <= 0).any() or (s <= 0).any():
        raise ValueError(f"speed seconds of {quick} and {slow}: expected positive times, as many for each, "
                         f"got {list(q)} and {list(s)}")
    d = describe(np.log(q / s))
    if d["n"] == 1:
        verdict = _by_point(-d["mean"])
    else:
        verdict = "supported" if d["ci_high"] < 0 else "refuted" if d["ci_low"] > 0 else "inconclusive"
    spread = "one round" if d["n"] == 1 else (
        f"geometric mean of {d['n']} rounds, 95% CI {math.exp(d['ci_low']):.2f} to {math.exp(d['ci_high']):.2f}")
    ratio = math.exp(d["mean"])
    evidence = (f"epoch time {quick}/{slow} {ratio:.2f} ({spread}); median {float(np.median(q)):.1f} s vs. "
                f"{float(np.median(s)):.1f} s per epoch")
    singles = tuple(_by_point(y - x) for x, y in zip(q, s, strict=True))
    return Part(f"{quick} trains faster than {slow}", verdict, evidence, singles, {
        "ratio": ratio, "ci_low": None if d["n"] == 1 else math.exp(d["ci_low"]),
        "ci_high": None if d["n"] == 1 else math.exp(d["ci_high"])})


def combine(verdicts) -> str:
    verdicts = set(verdicts)
    return "refuted" if "refuted" in verdicts else "supported" if verdicts == {"supported"} else "inconclusive"


def agreement(verdict: str, parts: Sequence[Part]) -> str:
    """How many seeds alone give ``verdict``: seed i of every seed-based part together.

    A speed part is measured once, in rounds that are not seeds: each seed takes its overall verdict
    (a claim with speed alone counts its rounds instead).
    """
    seeded = [p for p in parts if "trains faster" not in p.name]
    if not seeded:
        seeded, fixed = list(parts), []
        unit_name = "round"
    else:
        fixed, unit_name = [p.verdict for p in parts if "trains faster" in p.name], "seed"
    n = min(len(p.singles) for p in seeded)
    alone = [combine([*(p.singles[i] for p in seeded), *fixed]) for i in range(n)]
    unit = unit_name if n == 1 else unit_name + "s"
    if verdict == "inconclusive":
        return f"{alone.count('supported')} supported / {alone.count('refuted')} refuted of {n} {unit}"
    return f"{alone.count(verdict)} of {n} {unit}"


GATED = ("lstm", "gru")
SNAPSHOTS = ("epoch1", "final")
VANISHING_RULE = (
    f"Six comparisons, each supported when Almost Stochastic Order over the seeds gives eps_min(gated, simplernn) "
    f"< {ASO_THRESHOLD}, refuted when eps_min(simplernn, gated) < {ASO_THRESHOLD}, inconclusive otherwise: LSTM "
    "and GRU each against SimpleRNN in gradient reach (how much of the loss gradient reaches the earlier half of "
    "the window) after epoch 1 and for the kept model, and in memory retention (accuracy with the most padding "
    "after the review minus accuracy with none).")


def judge(evidence: Evidence) -> list[Claim]:
    """Every claim of the tutorial; one whose results are missing is "not measured" and names what is missing."""
    e, seed = evidence, evidence.bootstrap_seed

    def accuracy(model: str) -> np.ndarray:
        return _series(e.test_accuracy.get(model), f"test accuracy of {model}", e.seeds)

    def at_level(model: str) -> Part:
        return level(model, accuracy(model), TUTORIAL_REPORTED[model])

    def beats(better: str, worse: str) -> Part:
        a, b = accuracy(better), accuracy(worse)
        return comparison(better, worse, a, b, what="test accuracy", show="{:.1%}".format, seed=seed,
                          mcnemar_p=e.pooled_mcnemar.get((better, worse)))

    def vanishing() -> list[Part]:
        def reach(model: str, snapshot: str) -> np.ndarray:
            return _series(e.reach.get(model, {}).get(snapshot), f"gradient reach of {model} at {snapshot}", e.seeds)

        def memory(model: str) -> np.ndarray:
            return _series(e.memory.get(model), f"memory retention of {model}", e.seeds)

        parts = [comparison(g, "simplernn", reach(g, s), reach("simplernn", s), what=f"gradient reach at {s}",
                            show="{:.3g}".format, seed=seed) for s in SNAPSHOTS for g in GATED]
        return parts + [comparison(g, "simplernn", memory(g), memory("simplernn"), what="memory retention",
                                   show=lambda x: f"{100 * x:+.1f} points", seed=seed) for g in GATED]

    def accuracy_rule(model: str, better: str, worse: str) -> str:
        return f"{level_rule(model, TUTORIAL_REPORTED[model])} {comparison_rule(better, worse, 'test accuracy')}"

    claims = [
        (1, "SimpleRNN reaches about 85%, below the dense baseline", accuracy_rule("simplernn", "dense", "simplernn"),
         lambda: [at_level("simplernn"), beats("dense", "simplernn")]),
        (2, "LSTM reaches about 88%, better than SimpleRNN", accuracy_rule("lstm", "lstm", "simplernn"),
         lambda: [at_level("lstm"), beats("lstm", "simplernn")]),
        (3, "maxlen 500 instead of 200 lifts LSTM to about 88.5%",
         accuracy_rule("lstm_maxlen500", "lstm_maxlen500", "lstm"),
         lambda: [at_level("lstm_maxlen500"), beats("lstm_maxlen500", "lstm")]),
        (4, "GRU trains faster than LSTM and is a little less accurate",
         f"{speed_rule('gru', 'lstm')} {comparison_rule('lstm', 'gru', 'test accuracy')}",
         lambda: [faster("gru", "lstm", e.speed), beats("lstm", "gru")]),
        (5, "SimpleRNN suffers from vanishing gradients over long sequences; LSTM and GRU do not",
         VANISHING_RULE, vanishing),
    ]
    judged = []
    for number, text, rule, build in claims:
        rule = f"{rule} {COMBINE_RULE}"
        try:
            parts = tuple(build())
        except _Missing as missing:
            judged.append(Claim(number, text, "not measured", rule, f"no result for {missing}", ""))
            continue
        verdict = combine(p.verdict for p in parts)
        judged.append(Claim(number, text, verdict, rule, "; ".join(p.evidence for p in parts),
                            agreement(verdict, parts), parts))
    return judged


def tuning_rule(architecture: str) -> str:
    tuned = f"{architecture}-tuned"
    return (f"Tuning helps {architecture} when its study's best configuration, retrained with every seed "
            f"({tuned}), beats the default experiment {architecture}: "
            + comparison_rule(tuned, architecture, "test accuracy")
            + " The study chose the configuration on validation accuracy only; the test split decides here.")


def tuning_helps(evidence: Evidence, architectures: Sequence[str]) -> list[Claim]:
    """Per studied architecture: does its tuned configuration beat its default, as distributions over the seeds?
    The same machinery as the tutorial's comparisons; "not measured" names what is missing."""
    judged = []
    for number, architecture in enumerate(architectures, 1):
        tuned, rule = f"{architecture}-tuned", tuning_rule(architecture)
        text = f"tuning helps {architecture}"
        try:
            a = _series(evidence.test_accuracy.get(tuned), f"test accuracy of {tuned}", evidence.seeds)
            b = _series(evidence.test_accuracy.get(architecture), f"test accuracy of {architecture}", evidence.seeds)
        except _Missing as missing:
            judged.append(Claim(number, text, "not measured", rule, f"no result for {missing}", ""))
            continue
        part = comparison(tuned, architecture, a, b, what="test accuracy", show="{:.1%}".format,
                          seed=evidence.bootstrap_seed, mcnemar_p=evidence.pooled_mcnemar.get((tuned, architecture)))
        judged.append(Claim(number, text, part.verdict, rule, part.evidence, agreement(part.verdict, [part]), (part,)))
    return judged
