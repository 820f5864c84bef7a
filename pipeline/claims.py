"""The tutorial's claims, each judged against measured numbers: pure functions for the report stage.

A claim is split into parts, each judged on its own:
- a level ("about 88%") is supported when the test accuracy lies within
  ``TOLERANCE`` (one point) of the claimed value, refuted otherwise;
- a comparison ("better than SimpleRNN") is supported when McNemar's exact test on
  the same 25,000 test reviews gives p < ``ALPHA`` in the claimed direction,
  refuted when p < ``ALPHA`` the other way, inconclusive otherwise;
- a speed claim compares median seconds per epoch from the same pipeline run:
  supported beyond a 10% margin in the claimed direction, refuted beyond it the
  other way (these machines vary by 10-20% run to run).
The claim's verdict is refuted if any part is, supported if all are, inconclusive otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 0.01
ALPHA = 0.05
SPEED_MARGIN = 0.10
GRADIENT_FACTOR = 10  # "vanishing": SimpleRNN keeps 10x less of its gradient at the start of the window

# The tutorial's reported test accuracy, and its own code run on this project's machine
# (../shared/docs/TUTORIAL.md: test accuracy at epoch 10).
TUTORIAL_REPORTED = {"dense": 0.875, "simplernn": 0.85, "lstm": 0.88, "lstm_maxlen500": 0.885}
TUTORIAL_CODE_HERE = {"dense": 0.860, "simplernn": 0.809, "lstm": 0.869, "gru": 0.845, "lstm_maxlen500": 0.871}


def format_p(p: float) -> str:
    """A p-value for people: below 1e-300 it is shown as a bound (floats run out there)."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def p_clause(p: float) -> str:
    """"p = 0.012" or "p < 1e-300"."""
    shown = format_p(p)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


@dataclass(frozen=True)
class Part:
    verdict: str  # supported, refuted, inconclusive
    evidence: str
    p_value: float | None = None


@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    verdict: str
    evidence: str
    p_value: float | None


def level(name: str, accuracy: dict[str, dict], claimed: float) -> Part:
    metrics = accuracy[name]
    value = metrics["test/accuracy"]
    verdict = "supported" if abs(value - claimed) <= TOLERANCE else "refuted"
    return Part(verdict, f"{name} {value:.1%} [{metrics['test/accuracy_ci_low']:.1%}, "
                         f"{metrics['test/accuracy_ci_high']:.1%}] vs. claimed ~{claimed:.1%}")


def comparison(better: str, worse: str, accuracy: dict[str, dict], p_values: dict[tuple[str, str], float]) -> Part:
    """The claim that ``better`` is more accurate than ``worse`` on the test split."""
    a, b = accuracy[better]["test/accuracy"], accuracy[worse]["test/accuracy"]
    p = p_values[better, worse]
    if p >= ALPHA:
        verdict = "inconclusive"
    else:
        verdict = "supported" if a > b else "refuted"
    return Part(verdict, f"{better} {a:.1%} vs. {worse} {b:.1%} (McNemar {p_clause(p)})", p)


def faster(quick: str, slow: str, seconds: dict[str, float]) -> Part:
    """The claim that ``quick`` trains faster (per epoch) than ``slow``."""
    ratio = seconds[quick] / seconds[slow]
    if ratio < 1 - SPEED_MARGIN:
        verdict = "supported"
    elif ratio > 1 + SPEED_MARGIN:
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    return Part(verdict, f"{quick} {seconds[quick]:.1f} s/epoch vs. {slow} {seconds[slow]:.1f} s/epoch "
                         f"(ratio {ratio:.2f})")


def gradient_reach(gradients: dict[str, np.ndarray]) -> Part:
    """Vanishing gradients: how much of the loss gradient reaches the earlier half of the window.

    ``gradients`` maps a model to its input-gradient norm per step relative to the last
    step, earliest step first; the mean over the earlier half is its reach.
    """
    reach = {name: float(np.nanmean(values[: len(values) // 2])) for name, values in gradients.items()}
    gated = [reach[n] for n in ("lstm", "gru") if n in reach]
    text = ", ".join(f"{n} {v:.2g}" for n, v in reach.items())
    evidence = f"mean gradient over the window's earlier half, relative to the last step: {text}"
    if "simplernn" not in reach or not gated:
        return Part("inconclusive", evidence + " (SimpleRNN or LSTM/GRU missing)")
    if all(reach["simplernn"] * GRADIENT_FACTOR <= g for g in gated):
        return Part("supported", evidence)
    if any(reach["simplernn"] >= g for g in gated):
        return Part("refuted", evidence)
    return Part("inconclusive", evidence)


def combine(number: int, text: str, parts: list[Part]) -> Claim:
    verdicts = {p.verdict for p in parts}
    verdict = "refuted" if "refuted" in verdicts else "supported" if verdicts == {"supported"} else "inconclusive"
    p_values = [p.p_value for p in parts if p.p_value is not None]
    return Claim(number, text, verdict, "; ".join(p.evidence for p in parts), p_values[0] if p_values else None)


def judge(accuracy: dict[str, dict], p_values: dict[tuple[str, str], float], seconds: dict[str, float],
          gradients: dict[str, np.ndarray]) -> list[Claim]:
    """Every claim of the tutorial; one that needs a missing model says so."""
    claims = [
        (1, "SimpleRNN reaches about 85%, below the dense baseline",
         lambda: [level("simplernn", accuracy, 0.85), comparison("dense", "simplernn", accuracy, p_values)]),
        (2, "LSTM reaches about 88%, better than SimpleRNN",
         lambda: [level("lstm", accuracy, 0.88), comparison("lstm", "simplernn", accuracy, p_values)]),
        (3, "maxlen 500 instead of 200 lifts LSTM to about 88.5%",
         lambda: [level("lstm_maxlen500", accuracy, 0.885),
                  comparison("lstm_maxlen500", "lstm", accuracy, p_values)]),
        (4, "GRU trains faster than LSTM and is a little less accurate",
         lambda: [faster("gru", "lstm", seconds), comparison("lstm", "gru", accuracy, p_values)]),
        (5, "SimpleRNN suffers from vanishing gradients over long sequences; LSTM and GRU do not",
         lambda: [gradient_reach(gradients)]),
    ]
    judged = []
    for number, text, parts in claims:
        try:
            judged.append(combine(number, text, parts()))
        except KeyError as missing:
            judged.append(Claim(number, text, "not measured", f"no result for {missing.args[0]}", None))
    return judged
