"""report stage: the comparison of the models as distributions over seeds, and the tutorial's claims judged on them.

Reads   only what dvc.yaml declares: reports/evaluation.json and reports/evaluation/ (summary, replicates,
        pairwise McNemar, gradients, gradient reach, memory probe, run), reports/speed.json,
        reports/tutorial-reference.json, metrics/train/<model>/seed<seed>.json and -gradients.csv,
        plots/train/<model>/seed<seed>.csv (experiments and tuned configurations), reports/tuning/,
        data/prepared/stats.json;
        params base.seed, base.seeds, train.keep, train.patience, train.experiments, tune.architectures
Writes  reports/comparison.md, reports/comparison.html (self-contained, figures embedded),
        reports/figures/*.png
Run     python -m pipeline.report   (or: dvc repro report)

A missing input (a stage not run yet) leaves its rows, sections or figures out and is named
under "Missing results"; the report still renders.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import claims, config, probes, tables
from pipeline.config import Params
from pipeline.paths import (
    COMPARISON_HTML,
    COMPARISON_MD,
    EVALUATION,
    EVALUATION_RUN,
    FIGURES_DIR,
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
    tuned_name,
    tuning_report_path,
    write_outputs,
)
from pipeline.rendering import Page, render
from pipeline.stage import run

# Inputs ---------------------------------------------------------------------------------------------


def as_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_inputs(params: Params) -> tuple[dict, list[str]]:
    """Every result file the report uses, and a note for each one that is missing."""
    missing: list[str] = []

    def load(path: Path, reader, source: str):
        if path.is_file():
            return reader(path)
        missing.append(f"`{path}` ({source} not run)")
        return None

    inputs: dict = {"train": {}, "history": {}, "norms": {}, "tuning": {}, "trials": {}}
    models = [(name, f"train@{name}") for name in params.train.experiments]
    models += [(tuned_name(a), f"confirm@{a}") for a in params.tune.architectures]
    for name, stage in models:
        for seed in params.base.seeds:
            files = {"train": (train_metrics_path(name, seed), as_json),
                     "history": (train_history_path(name, seed), lambda p: pd.read_csv(p).to_dict("records")),
                     "norms": (train_gradients_path(name, seed), pd.read_csv)}
            if absent := [f"`{path}`" for path, _ in files.values() if not path.is_file()]:
                missing.append(f"{', '.join(absent)} (stage `{stage}-{seed}` not run)")
            for kind, (path, reader) in files.items():
                if path.is_file():
                    inputs[kind].setdefault(name, {})[seed] = reader(path)
    for architecture in params.tune.architectures:
        if (summary := load(tuning_report_path(architecture), as_json, f"stage `tune@{architecture}`")) is not None:
            inputs["tuning"][architecture] = summary
        if (trials := load(tuning_report_path(architecture, "-trials.csv"), pd.read_csv,
                           f"stage `tune@{architecture}`")) is not None:
            inputs["trials"][architecture] = trials
    for key, path, reader in (("evaluation", EVALUATION, as_json), ("summary", SUMMARY, as_json),
                              ("replicates", REPLICATES, pd.read_csv), ("pairwise", PAIRWISE, pd.read_csv),
                              ("gradients", GRADIENTS, pd.read_csv), ("reach", GRADIENT_REACH, pd.read_csv),
                              ("memory", MEMORY, pd.read_csv), ("run", EVALUATION_RUN, as_json)):
        inputs[key] = load(path, reader, "stage `evaluate`")
        if isinstance(inputs[key], pd.DataFrame) and not COLUMNS.get(key, set()) <= set(inputs[key].columns):
            # A table an older version of evaluate wrote: left out and named, never misread.
            missing.append(f"`{path}` (written by an older evaluate, without the columns "
                           f"{', '.join(sorted(COLUMNS[key] - set(inputs[key].columns)))}: rerun stage `evaluate`)")
            inputs[key] = None
    inputs["speed"] = load(SPEED, as_json, "stage `speed`")
    inputs["reference"] = load(TUTORIAL_REFERENCE, as_json, "`python bench/tutorial_reference.py`")
    inputs["stats"] = load(STATS, as_json, "stage `prepare`")
    return inputs, missing


# The columns the report reads from each table of the evaluate stage.
COLUMNS = {"replicates": {"model", "kind", "seed", "test/accuracy", "val/accuracy"},
           "pairwise": {"model_a", "model_b", "only_a", "only_b", "mcnemar_p"},
           "reach": {"model", "seed", "snapshot", "reach"},
           "memory": {"model", "seed", "filler", "distance", "accuracy"}}


# Evidence for the claims (pure) ------------------------------------------------------------------------


def in_seed_order(values: pd.Series, seeds: tuple[int, ...]) -> list[float] | None:
    """``values`` (indexed by seed) in base.seeds order; None unless every seed has exactly one value: a model
    with a replicate missing gives the claims no per-seed list."""
    if values.index.has_duplicates or not set(seeds) <= set(values.index):
        return None
    return [float(values[seed]) for seed in seeds]


def evidence(params: Params, inputs: dict) -> claims.Evidence:
    seeds = tuple(params.base.seeds)
    test, pooled, reach, memory = {}, {}, {}, {}
    if inputs["replicates"] is not None:
        for model, rows in inputs["replicates"].groupby("model", sort=False):
            test[model] = in_seed_order(rows.set_index("seed")["test/accuracy"], seeds)
    if inputs["pairwise"] is not None:
        for row in inputs["pairwise"].itertuples(index=False):
            pooled[row.model_a, row.model_b] = pooled[row.model_b, row.model_a] = float(row.mcnemar_p)
    if inputs["reach"] is not None:
        for (model, snapshot), rows in inputs["reach"].groupby(["model", "snapshot"], sort=False):
            reach.setdefault(model, {})[snapshot] = in_seed_order(rows.set_index("seed")["reach"], seeds)
    if inputs["memory"] is not None:
        # Retention: accuracy with the content furthest from the window's end minus right at the end (filler pad).
        padded = inputs["memory"][inputs["memory"]["filler"] == "pad"]
        for model, rows in padded.groupby("model", sort=False):
            curves = {seed: r.set_index("distance")["accuracy"] for seed, r in rows.groupby("seed")}
            memory[model] = in_seed_order(pd.Series({seed: c[c.index.max()] - c[c.index.min()]
                                                     for seed, c in curves.items()}), seeds)

    def complete(mapping: dict) -> dict:
        return {key: values for key, values in mapping.items() if values is not None}

    return claims.Evidence(seeds=seeds, test_accuracy=complete(test), pooled_mcnemar=pooled, speed=inputs["speed"],
                           reach={m: complete(r) for m, r in reach.items()}, memory=complete(memory),
                           bootstrap_seed=params.base.seed)


def seconds_per_epoch(inputs: dict) -> dict[str, float]:
    """Median s/epoch per model (experiments and tuned configurations): over seeds of each replicate's median."""
    return {name: float(np.median([m["epoch/seconds"] for m in per_seed.values()]))
            for name, per_seed in inputs["train"].items()}


# The stage --------------------------------------------------------------------------------------------


def build(params: Params, inputs: dict, missing: list[str]) -> tuple[list[tuple], dict[str, bytes]]:
    """The report's blocks and figures; each section appears only when its inputs exist."""
    summary, judged_on = inputs["summary"] or {}, evidence(params, inputs)
    page = Page([("h1", "IMDb sentiment: dense, SimpleRNN, LSTM and GRU compared over seeds")])
    if inputs["run"]:
        page.add(("p", tables.run_paragraph(inputs["run"], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))))
    page.add(("p", tables.epoch_paragraph(params.train.keep, params.base.seeds, params.base.seed,
                                                 params.train.patience)))
    if missing:
        page.add(("h2", "Missing results"), ("p", "Not available, so left out below: " + "; ".join(missing) + "."))
    if summary:
        _results(page, inputs, summary)
    judged = claims.judge(judged_on)
    page.add(("h2", "The tutorial's claims"),
             ("p", f"Each claim is judged on the distributions over {len(params.base.seeds)} seeds by the rule in "
                   "its row. Single-seed agreement: how many seeds, judged alone, give the same verdict, i.e. how "
                   "often a study of one seed would have reached it."),
             ("table", tables.claims_table(judged)), ("p", tables.not_reproduced(judged, summary)))
    if params.tune.architectures:
        verdicts = claims.tuning_helps(judged_on, params.tune.architectures)
        page.add(("h2", "Does tuning help?"), ("p", tables.tuning_paragraph(verdicts)),
                 ("table", tables.tuning_verdicts(verdicts, summary, inputs["tuning"])))
    if summary or inputs["reference"]:
        page.add(("h2", "Against the tutorial's numbers"),
                 ("p", "Test accuracy: as the tutorial reports it, its own code run here on the same data (mean ± "
                       "sd over seeds, percentage points), and this pipeline. " + tables.reference_note(
                           inputs["reference"])),
                 ("table", tables.tutorial_table(summary, inputs["reference"])))
    _probes(page, inputs, judged_on)
    _training(page, inputs)
    return page.blocks, page.figures


def _results(page: Page, inputs: dict, summary: dict) -> None:
    from pipeline import figures

    champion = (inputs["evaluation"] or {}).get("champion")
    page.add(("h2", "Results"), ("p", "Test accuracy over each model's seeds: mean ± sample sd, the 95% "
                                      "t-interval of the mean, the range and every seed's value; validation "
                                      "accuracy of the kept, the best and the last epoch, means over seeds."))
    if champion:
        page.add(("p", f"Champion by mean validation accuracy (never test): {champion['model']}, val "
                       f"{champion['val/accuracy']:.4f}, test {champion['test/accuracy']:.4f}."))
    page.add(("table", tables.results_table(summary, inputs["replicates"], seconds_per_epoch(inputs))))
    tests = [summary[m]["test/accuracy"] for m in summary]
    page.figure("test-accuracy.png", figures.seed_dots(list(summary), [t["values"] for t in tests],
                                                       [t["mean"] for t in tests], [t.get("ci_low") for t in tests],
                                                       [t.get("ci_high") for t in tests]),
                "Test accuracy: every seed a dot, the mean a bar with its 95% CI")


def _probes(page: Page, inputs: dict, judged_on: claims.Evidence) -> None:
    """Claim 5's section: the probe table, the gradient curves and the memory curves."""
    from pipeline import figures

    models = ([c.split("/")[0] for c in inputs["gradients"].columns if "/" in c]
              if inputs["gradients"] is not None else list(inputs["norms"]))
    steps, curves = probes.relative_curves(inputs["norms"], list(dict.fromkeys(models)))
    memory = inputs["memory"]
    if not (judged_on.reach or judged_on.memory or curves or (memory is not None and not memory.empty)):
        return
    page.add(("h2", "Vanishing gradients (claim 5)"),
             ("p", "Probes on validation reviews. Gradient reach: the loss gradient reaching each input "
                   "step, relative to the mean of the last 10 steps; reach is its median over the earlier "
                   "half of the window (near 0 when gradients vanish), at initialisation, after epoch 1 and "
                   "for the kept model. Memory retention: accuracy with the review's last tokens pushed "
                   "furthest from the window's end by padding, minus with them at the end. Mean ± sd (seeds)."))
    if judged_on.reach or judged_on.memory:
        page.add(("table", tables.probe_table(judged_on.reach, judged_on.memory)))
    if curves:
        page.figure("gradients.png", figures.gradient_spread(steps, curves),
                    "Gradient reaching each step, relative to the last steps: median over seeds, min-max band")
    if memory is not None and not memory.empty:
        page.figure("memory.png", figures.memory_curves(memory),
                    "Memory probe: accuracy as the content moves away from the window's end, mean and min-max")


def _training(page: Page, inputs: dict) -> None:
    """Speed (claim 4), learning curves, tuning and review lengths."""
    from pipeline import figures

    if inputs["speed"]:
        page.add(("h2", "Training speed (claim 4)"), ("p", tables.speed_note(inputs["speed"])),
                 ("table", tables.speed_table(inputs["speed"])))
    if inputs["history"]:
        page.add(("h2", "Learning curves"), ("p", "Per experiment: each seed's validation curve (thin) with its "
                                                  "kept epoch marked, the mean validation curve (thick line) "
                                                  "and the mean training curve (dots)."))
        for name, per_seed in inputs["history"].items():
            kept = {seed: m["kept/epoch"] for seed, m in inputs["train"].get(name, {}).items() if "kept/epoch" in m}
            page.figure(f"curves-{name}.png", figures.seed_curves(per_seed, kept, name),
                        f"{name}: training (dots) and validation (lines) accuracy and loss over {len(per_seed)} seeds")
    if inputs["tuning"]:
        page.add(("h2", "Tuning"), ("p", "Best settings per architecture from its Optuna study, and what pruning "
                                         "saved: epochs trained against the epochs the same trials would have "
                                         "run unpruned."), ("table", tables.tuning_table(inputs["tuning"])))
        if inputs["trials"]:
            page.figure("tuning.png", figures.tuning_scatter(inputs["trials"]),
                        "Validation accuracy of every tuning trial against maxlen and units")
    if inputs["stats"]:
        page.add(("h2", "Review lengths"), ("p", "Tokens per review (with the start token) and the share of "
                                                 "reviews a maxlen cuts."),
                 ("table", tables.length_table(inputs["stats"])))


def main() -> None:
    argparse.ArgumentParser(description="Write reports/comparison.md and .html from the result files, naming "
                                        "any that are missing.").parse_args()
    params = config.load()
    inputs, missing = read_inputs(params)
    print(f"report: {sum(len(v) for v in inputs['train'].values())} replicates, {len(inputs['tuning'])} studies, "
          f"{len(inputs['summary'] or {})} evaluated models" + (f"; missing {len(missing)}" if missing else ""),
          flush=True)
    blocks, figure_data = build(params, inputs, missing)
    markdown, page = render(blocks, figure_data)
    files = {FIGURES_DIR / name: data for name, data in figure_data.items()}
    write_outputs(files | {COMPARISON_MD: markdown, COMPARISON_HTML: page}, replace_folders=(FIGURES_DIR,))
    print(f"wrote {COMPARISON_MD}, {COMPARISON_HTML} and {len(figure_data)} figures in {FIGURES_DIR}"
          + (f"; missing: {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    run(main, end_process=True)
