"""The report's tables and plain-words paragraphs: pure functions from the result files' contents to text.

Accuracies are fractions with four decimals where the pipeline's own numbers are listed, and percentages
where they stand beside the tutorial's ("about 88%"). A spread is "mean ± sd" over seeds; a missing value is "—".
"""

from __future__ import annotations

import math

import pandas as pd

from pipeline import claims, distributions
from pipeline.architectures import uses

DASH = "—"


def fraction(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.{digits}f}"


def mean_sd(stats: dict, digits: int = 4) -> str:
    """"0.8712 ± 0.0043" from a summary entry ({"mean", "sd", ...}); the mean alone when sd is null (n = 1)."""
    if stats.get("sd") is None:
        return fraction(stats["mean"], digits)
    return f"{fraction(stats['mean'], digits)} ± {fraction(stats['sd'], digits)}"


def percent_spread(values: list[float]) -> str:
    """"87.1% ± 0.4 (3 seeds)": mean and sample sd in percentage points."""
    d = distributions.describe(values)
    if d["n"] == 1:
        return f"{d['mean']:.1%} (1 seed)"
    return f"{d['mean']:.1%} ± {100 * d['sd']:.1f} ({d['n']} seeds)"


def settings_text(settings) -> str:
    """"lstm, maxlen 200, units 32, ..." (units left out for dense, which has none)."""
    if not isinstance(settings, dict):
        return str(settings)
    architecture = settings.get("architecture")
    shown = {k: v for k, v in settings.items()
             if k != "architecture" and (architecture is None or uses(architecture, k))}
    text = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
    return f"{settings['architecture']}, {text}" if "architecture" in settings else text


def run_paragraph(run_info: dict, written: str) -> str:
    """Where and on what the evaluation ran (reports/evaluation/run.json)."""
    machine = run_info.get("machine", {})
    return (f"Test split evaluated {run_info['date']} on {machine.get('cpu')}, {machine.get('cores')} cores, "
            f"{machine.get('memory_gib')} GiB, GPUs: {', '.join(machine.get('gpus') or []) or 'none'}. Prepared data "
            f"sha256 {run_info['data.sha256'][:16]}…; code at git commit {run_info['git.commit'][:10]}"
            f"{' with uncommitted changes' if run_info['git.dirty'] else ''}. Report written {written}.")


def epoch_paragraph(keep: str, seeds: tuple[int, ...], seed: int, patience: int = 0) -> str:
    """Which epoch of each run is compared, and why; when training stopped early; how many seeds."""
    kept = ("the epoch with the highest validation accuracy (train.keep = best; the first such epoch), as Keras' "
            "ModelCheckpoint(save_best_only=True) keeps it, not the last epoch as in the tutorial: the last epoch is "
            "a noisy sample of a curve that swings by several points (Chollet's own LSTM log ends .891 .877 .840 "
            ".893 .875 .876). The choice uses the validation split only"
            if keep == "best" else "the last epoch (train.keep = last), as in the tutorial")
    if keep == "best" and patience:
        kept += (f"; a run stopped once {patience} epochs in a row brought no higher validation accuracy "
                 "(train.patience), so its epochs are a cap")
    return (f"Each model compared is {kept}; the test split is read once per model file, by the evaluate stage. "
            f"Every default experiment is trained once per seed, {len(seeds)} seeds ({', '.join(map(str, seeds))}; "
            f"base.seeds), and every number below is a distribution over them; so is each tuned model: its "
            f"study's best configuration retrained with the same seeds (the study's own trials use seed {seed}).")


def results_table(summary: dict[str, dict], replicates: pd.DataFrame | None,
                  seconds: dict[str, float | None]) -> pd.DataFrame:
    """One row per model: settings, the test accuracy over its seeds, validation of the kept, best and last
    epoch (means over seeds), median seconds per epoch and size."""
    def replicate_mean(model: str, column: str):
        if replicates is None or column not in replicates:
            return None
        values = replicates.loc[replicates["model"] == model, column].dropna()
        return float(values.mean()) if len(values) else None

    rows = []
    for model, entry in summary.items():
        test = entry["test/accuracy"]
        ci = (f"[{fraction(test['ci_low'])}, {fraction(test['ci_high'])}]"
              if test.get("ci_low") is not None else DASH)
        rows.append({
            "model": model, "kind": entry["kind"], "settings": settings_text(entry["settings"]),
            "seeds": entry["n"], "test accuracy, mean ± sd": mean_sd(test), "95% CI of the mean": ci,
            "min–max": f"{fraction(test['min'])}–{fraction(test['max'])}",
            "per seed": "; ".join(f"{seed}: {fraction(value)}"
                                  for seed, value in zip(entry["seeds"], test["values"], strict=True)),
            "val accuracy, kept epoch": fraction(entry["val/accuracy"]["mean"]),
            "val accuracy, best epoch": fraction(replicate_mean(model, "best/val/accuracy")),
            "val accuracy, last epoch": fraction(replicate_mean(model, "last/val/accuracy")),
            "s/epoch (median)": fraction(seconds.get(model), 1),
            "parameters": f"{entry['parameters']:,}" if entry.get("parameters") else DASH,
        })
    return pd.DataFrame(rows)


def claims_table(judged: list[claims.Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"#": c.number, "claim": c.text, "verdict": c.verdict, "rule": c.rule,
                          "evidence": c.evidence, "single-seed agreement": c.agreement or DASH} for c in judged])


def not_reproduced(judged: list[claims.Claim], summary: dict[str, dict]) -> str:
    """Plain words: the claims that do not hold here, and the reported levels the mean misses."""
    failed = [f"claim {c.number}, “{c.text}” ({c.verdict})" for c in judged if c.verdict != "supported"]
    missed = []
    for name, reported in claims.TUTORIAL_REPORTED.items():
        if name in summary:
            test = summary[name]["test/accuracy"]
            if abs(test["mean"] - reported) > claims.TOLERANCE + claims.EPSILON:  # the level rule's band
                missed.append(f"{name} {test['mean']:.1%} (mean of {summary[name]['n']}) vs. about {reported:.1%}")
    if not failed and not missed:
        return "What is not reproduced: nothing; every claim and every reported accuracy of the tutorial holds here."
    sentence = "What is not reproduced: " + ("; ".join(failed) if failed else "every claim holds")
    if missed:
        sentence += ". Reported accuracies that the mean over seeds misses by more than one point: " + "; ".join(missed)
    return sentence + "."


def tuning_verdicts(judged: list[claims.Claim], summary: dict[str, dict], tuning: dict[str, dict]) -> pd.DataFrame:
    """Per study: the default and the tuned configuration as distributions over seeds, the verdict on "tuning
    helps", and the best trial's own validation score beside the tuned replicates' (the winner's curse)."""
    rows = []
    for claim in judged:
        architecture = claim.text.removeprefix("tuning helps ")
        tuned, study = f"{architecture}-tuned", tuning.get(architecture, {})

        def test(model: str) -> str:
            return mean_sd(summary[model]["test/accuracy"]) if model in summary else DASH

        rows.append({
            "architecture": architecture,
            "tuned settings": ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in sorted(study.get("best_params", {}).items())) or DASH,
            "default: test, mean ± sd": test(architecture), "tuned: test, mean ± sd": test(tuned),
            "best trial's val (1 seed)": fraction(study.get("best_value")),
            "tuned: val, mean over seeds": (fraction(summary[tuned]["val/accuracy"]["mean"]) if tuned in summary
                                            else DASH),
            "verdict": claim.verdict, "evidence": claim.evidence, "single-seed agreement": claim.agreement or DASH,
        })
    return pd.DataFrame(rows)


def tuning_paragraph(judged: list[claims.Claim]) -> str:
    """How the tuned models are made and judged, and the verdicts in one sentence."""
    verdicts = "; ".join(f"{c.text}: {c.verdict}" for c in judged)
    rule = claims.tuning_rule("<architecture>")
    return ("Each study's best configuration (chosen on validation accuracy, by its best trial, one seed) is "
            "retrained with every seed by the confirm stage and scored once on the test split like the defaults: "
            "the tuned numbers are those distributions, not the best trial's validation score, which is the "
            "maximum over the study's trials on one validation split and overstates what the configuration gives "
            f"(the winner's curse; both are shown). Rule: {rule} Verdicts: {verdicts}.")


def tutorial_table(summary: dict[str, dict], reference: dict | None) -> pd.DataFrame:
    """The tutorial's reported accuracy, its own code run here (over seeds), and this pipeline (over seeds)."""
    measured = (reference or {}).get("models", {})
    names = list(dict.fromkeys([*measured, *claims.TUTORIAL_REPORTED]))
    rows = []
    for name in names:
        code = measured.get(name)
        rows.append({
            "model": name,
            "tutorial reports": f"{claims.TUTORIAL_REPORTED[name]:.1%}" if name in claims.TUTORIAL_REPORTED else DASH,
            "tutorial's code here: test": percent_spread(code["test/accuracy"]) if code else "not measured",
            "its val, last epoch": percent_spread(code["val/accuracy/last"]) if code else DASH,
            "its output layers": code.get("head", DASH) if code else DASH,
            "this pipeline: test": (percent_spread(summary[name]["test/accuracy"]["values"]) if name in summary
                                    else "not evaluated"),
        })
    return pd.DataFrame(rows)


def reference_note(reference: dict | None) -> str:
    if reference is None:
        return ("The tutorial's own code has not been measured here: reports/tutorial-reference.json is missing "
                "(run `python bench/tutorial_reference.py`).")
    smoke = f" A smoke run on {reference['limit']} reviews per split: not comparable." if reference.get("limit") else ""
    return ("Its protocol differs from this pipeline's: validation_split=0.2 inside fit (the last 20% of the "
            "training reviews), the last epoch's model scored, and the GRU's published head Dense(1) without a "
            f"sigmoid; seeds {', '.join(map(str, reference.get('seeds', [])))}, measured {reference.get('date', '?')}. "
            "This pipeline: a fixed stratified validation split, the kept epoch, a sigmoid on every head." + smoke)


def speed_table(speed: dict, reference: str = "lstm") -> pd.DataFrame:
    """Seconds per epoch per model, side by side in one process, and each round's ratio to ``reference``."""
    seconds = {m: pd.Series(speed["seconds"][m], dtype=float) for m in speed["models"]}
    rows = []
    for model, values in seconds.items():
        row = {"model": model, "maxlen": speed.get("maxlen", {}).get(model, DASH),
               "s/epoch (median)": f"{values.median():.2f}", "min–max": f"{values.min():.2f}–{values.max():.2f}",
               "per round": ", ".join(f"{v:.2f}" for v in values)}
        if reference in seconds:
            ratio = values.to_numpy() / seconds[reference].to_numpy()
            row[f"ratio to {reference}, per round"] = ", ".join(f"{r:.3f}" for r in ratio)
            row[f"ratio to {reference}: median (min–max)"] = (f"{pd.Series(ratio).median():.3f} "
                                                           f"({ratio.min():.3f}–{ratio.max():.3f})")
        rows.append(row)
    return pd.DataFrame(rows)


def speed_note(speed: dict) -> str:
    threads = speed.get("threads", {})
    if speed.get("backend", "tensorflow") == "tensorflow":
        # TensorFlow reports 0 threads for "its default": one per available core.
        intra, inter = (threads.get(k) or "default" for k in ("intra_op", "inter_op"))
        backend = f"TensorFlow threads intra-op {intra}, inter-op {inter}"
    else:
        backend = f"Keras backend {speed['backend']}"
    return (f"Epochs of each architecture's default model alternate ({', '.join(speed['models'])}, then in reverse) "
            f"in one process on the same {speed['reviews']:,} training reviews, {speed['rounds']} timed rounds after "
            f"a warm-up round; {backend}, {threads.get('cores_available', '?')} cores available, "
            f"deterministic ops {'on' if speed.get('deterministic') else 'off'}"
            + (f"; measured {speed['date']}" if speed.get("date") else "")
            + ". A ratio below 1 means faster than the reference model in the same round.")


def probe_table(reach: dict[str, dict[str, list[float]]], memory: dict[str, list[float]]) -> pd.DataFrame:
    """Claim 5's numbers per model: gradient reach per snapshot and memory retention, mean ± sd over seeds."""
    def spread(values: list[float]) -> str:
        d = distributions.describe(values)
        return f"{d['mean']:.3g}" + (f" ± {d['sd']:.2g}" if d["n"] > 1 else "") + f" ({d['n']})"

    rows = []
    for model in dict.fromkeys([*reach, *memory]):
        row = {"model": model} | {f"reach, {s}": spread(v) for s, v in reach.get(model, {}).items()}
        row["memory retention (pad)"] = spread(memory[model]) if model in memory else DASH
        rows.append(row)
    return pd.DataFrame(rows).fillna(DASH)


def tuning_table(tuning: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "architecture": a, "study": s["study"],
        "trials complete / pruned / failed / cut": "{complete} / {pruned} / {failed} / {cut}".format(
            **{"cut": 0} | s["trials"]),  # cut: stopped by tune.timeout (older summaries have no such count)
        "best settings": ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in sorted(s["best_params"].items())),
        "best val accuracy": f"{s['best_value']:.4f}",
        "default val accuracy": f"{s['default_value']:.4f}" if s["default_value"] is not None else DASH,
        "gain (points)": f"{100 * (s['best_value'] - s['default_value']):+.2f}" if s["default_value"] else DASH,
        "epochs trained / unpruned": f"{s['epochs_trained']} / {s['epochs_unpruned']} ({s['epoch_ratio']:.2f})",
        # The trials' own time, from the storage: a rerun that ran no trial (wall_seconds) does not reset it.
        "trial s": f"{s['trial_seconds']:.0f}" if "trial_seconds" in s else DASH,
    } for a, s in tuning.items()])


def length_table(stats: dict) -> pd.DataFrame:
    rows = []
    for split, s in stats["splits"].items():
        length = s["length"]
        rows.append({"split": split, "reviews": f"{s['reviews']:,}", "mean length": f"{length['mean']:.0f}",
                     "median": f"{length['p50']:.0f}", "90th pct": f"{length['p90']:.0f}",
                     "99th pct": f"{length['p99']:.0f}", "longest": f"{length['max']:,}",
                     **{f"cut at maxlen {m}": f"{f:.1%}" for m, f in s["truncated_fraction"].items()}})
    return pd.DataFrame(rows)
