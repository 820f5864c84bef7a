"""report stage: the comparison tables, figures and the tutorial's claims, from the pipeline's result files.

Reads   only what dvc.yaml declares: reports/evaluation.json and reports/evaluation/,
        metrics/train/, plots/train/, reports/tuning/, data/prepared/stats.json,
        params train.experiments and tune.architectures
Writes  reports/comparison.md, reports/comparison.html (self-contained, figures embedded),
        reports/figures/*.png
Run     python -m pipeline.report   (or: dvc repro report)

A missing input (a stage not run yet) leaves its rows or figures out and is named
under "Missing results"; the report still renders.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import claims, config
from pipeline.cli import run
from pipeline.config import Params
from pipeline.paths import (
    COMPARISON_HTML,
    COMPARISON_MD,
    EVALUATION,
    EVALUATION_RUN,
    FIGURES_DIR,
    GRADIENTS,
    PAIRWISE,
    STATS,
    train_history_path,
    train_metrics_path,
    tuning_report_path,
    write_outputs,
)

# Inputs ---------------------------------------------------------------------------------------------


def read_inputs(params: Params) -> tuple[dict, list[str]]:
    """Every result file the report uses, and a note for each one that is missing."""
    missing: list[str] = []

    def load(path: Path, reader, stage: str):
        if path.is_file():
            return reader(path)
        missing.append(f"`{path}` (stage `{stage}` not run)")
        return None

    as_json = lambda path: json.loads(path.read_text(encoding="utf-8"))  # noqa: E731
    inputs = {"train": {}, "history": {}, "tuning": {}, "trials": {}}
    for name in params.train.experiments:
        inputs["train"][name] = load(train_metrics_path(name), as_json, f"train@{name}")
        inputs["history"][name] = load(train_history_path(name), lambda p: pd.read_csv(p).to_dict("records"),
                                       f"train@{name}")
    for architecture in params.tune.architectures:
        inputs["tuning"][architecture] = load(tuning_report_path(architecture), as_json, f"tune@{architecture}")
        inputs["trials"][architecture] = load(tuning_report_path(architecture, "-trials.csv"), pd.read_csv,
                                              f"tune@{architecture}")
    inputs["evaluation"] = load(EVALUATION, as_json, "evaluate") or {}
    inputs["run"] = load(EVALUATION_RUN, as_json, "evaluate") or {}
    inputs["pairwise"] = load(PAIRWISE, pd.read_csv, "evaluate")
    inputs["gradients"] = load(GRADIENTS, pd.read_csv, "evaluate")
    if inputs["gradients"] is not None and inputs["gradients"].empty:
        inputs["gradients"] = None  # evaluate had no default model to probe
    inputs["stats"] = load(STATS, as_json, "prepare")
    for kind in ("train", "history", "tuning", "trials"):
        inputs[kind] = {k: v for k, v in inputs[kind].items() if v is not None}
    return inputs, missing


# Tables (pure) --------------------------------------------------------------------------------------


def model_rows(params: Params, inputs: dict) -> list[dict]:
    """One record per model (default experiments, then tuned), with its settings and results."""
    rows = []
    for name, experiment in params.train.experiments.items():
        metrics = inputs["train"].get(name)
        if metrics:
            rows.append({"model": name, "kind": "default", **vars(experiment), "val": metrics["val/accuracy"],
                         "best_val": metrics["best/val/accuracy"], "best_epoch": metrics["best/epoch"],
                         "seconds_per_epoch": metrics["epoch/seconds"], "train_seconds": metrics["total/seconds"],
                         "parameters": metrics["parameters"]})
    for architecture, summary in inputs["tuning"].items():
        trials = inputs["trials"].get(architecture)
        settings = vars(params.train.experiments[architecture]) | summary["best_params"]
        seconds = None
        if trials is not None:
            best = trials[trials["number"] == summary["best_trial"]].iloc[0]
            seconds = pd.to_timedelta(best["duration"]).total_seconds()
        rows.append({"model": f"{architecture}-tuned", "kind": "tuned", **settings, "val": summary["best_value"],
                     "best_val": summary["best_value"], "best_epoch": settings["epochs"],
                     "seconds_per_epoch": seconds / settings["epochs"] if seconds else None,
                     "train_seconds": seconds, "parameters": None})
    for row in rows:
        test = inputs["evaluation"].get(row["model"], {})
        row["parameters"] = row["parameters"] or test.get("parameters")
        row["test"] = test
    return rows


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The headline table: settings, validation and test accuracy, cost."""
    def test(row, key, fmt="{:.4f}"):
        return fmt.format(row["test"][key]) if key in row["test"] else "not evaluated"

    return pd.DataFrame([{
        "model": r["model"], "architecture": r["architecture"], "maxlen": r["maxlen"],
        "units": "—" if r["architecture"] == "dense" else r["units"], "epochs": r["epochs"],
        "parameters": f"{r['parameters']:,}" if r["parameters"] else "—",
        "val accuracy (saved model)": f"{r['val']:.4f}",
        "best val accuracy (epoch)": f"{r['best_val']:.4f} ({r['best_epoch']})",
        "test accuracy [95% CI]": (f"{r['test']['test/accuracy']:.4f} [{r['test']['test/accuracy_ci_low']:.4f}, "
                                   f"{r['test']['test/accuracy_ci_high']:.4f}]") if r["test"] else "not evaluated",
        "test ROC AUC": test(r, "test/roc_auc"),
        "McNemar p vs. best": claims.format_p(r["test"]["test/mcnemar_p_vs_best"]) if r["test"] else "—",
        "s/epoch": f"{r['seconds_per_epoch']:.1f}" if r["seconds_per_epoch"] else "—",
        "training s": f"{r['train_seconds']:.0f}" if r["train_seconds"] else "—",
        "test reviews/s": test(r, "test/reviews_per_second", "{:,.0f}"),
    } for r in rows])


def tutorial_table(evaluation: dict) -> pd.DataFrame:
    """Our test accuracy beside the tutorial's reported numbers and its own code run on this machine."""
    names = [n for n in claims.TUTORIAL_CODE_HERE if n in evaluation or n in claims.TUTORIAL_REPORTED]
    return pd.DataFrame([{
        "model": n,
        "tutorial reports": f"{claims.TUTORIAL_REPORTED[n]:.1%}" if n in claims.TUTORIAL_REPORTED else "—",
        "tutorial's code here": f"{claims.TUTORIAL_CODE_HERE[n]:.1%}",
        "this pipeline": f"{evaluation[n]['test/accuracy']:.1%}" if n in evaluation else "not evaluated",
    } for n in names])


def tuning_table(tuning: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "architecture": a, "study": s["study"],
        "trials complete / pruned / failed": "{complete} / {pruned} / {failed}".format(**s["trials"]),
        "best settings": ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in sorted(s["best_params"].items())),
        "best val accuracy": f"{s['best_value']:.4f}",
        "default val accuracy": f"{s['default_value']:.4f}" if s["default_value"] is not None else "—",
        "gain (points)": f"{100 * (s['best_value'] - s['default_value']):+.2f}" if s["default_value"] else "—",
        "epochs trained / unpruned": f"{s['epochs_trained']} / {s['epochs_unpruned']} ({s['epoch_ratio']:.2f})",
        "wall s": f"{s['wall_seconds']:.0f}",
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


def claims_table(judged: list[claims.Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"#": c.number, "claim": c.text, "verdict": c.verdict, "evidence": c.evidence,
                          "McNemar p": claims.format_p(c.p_value) if c.p_value is not None else "—"} for c in judged])


def not_reproduced(judged: list[claims.Claim], evaluation: dict) -> str:
    """One plain sentence on where the tutorial's claims and numbers do not hold here."""
    failed = [f"claim {c.number} ({c.verdict})" for c in judged if c.verdict != "supported"]
    off = [f"{n} {evaluation[n]['test/accuracy']:.1%} vs. {claimed:.1%}" for n, claimed in
           claims.TUTORIAL_REPORTED.items() if n in evaluation
           and abs(evaluation[n]["test/accuracy"] - claimed) > claims.TOLERANCE]
    if not failed and not off:
        return "Every claim and reported accuracy of the tutorial is reproduced here."
    return ("Not reproduced here: " + "; ".join(failed or ["every claim holds"])
            + (". Reported accuracies missed by more than one point: " + "; ".join(off) if off else "") + ".")


def p_value_map(pairwise: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    if pairwise is None:
        return {}
    pairs = {}
    for row in pairwise.itertuples(index=False):
        pairs[row.model_a, row.model_b] = pairs[row.model_b, row.model_a] = float(row.p_value)
    return pairs


def relative_gradients(gradients: pd.DataFrame | None) -> dict[str, np.ndarray]:
    if gradients is None:
        return {}
    return {c.removesuffix("/relative"): gradients[c].to_numpy() for c in gradients if c.endswith("/relative")}


# Rendering ------------------------------------------------------------------------------------------


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    cells = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def render(blocks: list[tuple], figures: dict[str, bytes]) -> tuple[str, str]:
    """Markdown (figures linked) and HTML (figures embedded) from one list of blocks."""
    md, body = [], []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + content[0])
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            md.append(content[0])
            body.append(f"<p>{html.escape(content[0])}</p>")
        elif kind == "table":
            md.append(markdown_table(content[0]))
            body.append(content[0].to_html(index=False, border=0, classes="results"))
        elif kind == "figure":
            name, caption = content
            md.append(f"![{caption}](figures/{name})")
            data = base64.b64encode(figures[name]).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:75em;margin:auto;padding:1em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}img{max-width:100%}")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>IMDb RNN comparison</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return "\n\n".join(md) + "\n", page


def png(figure) -> bytes:
    from pipeline.figures import plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


# The stage --------------------------------------------------------------------------------------------


def build(params: Params, inputs: dict, missing: list[str]) -> tuple[list[tuple], dict[str, bytes]]:
    from pipeline import figures

    evaluation, run_info = inputs["evaluation"], inputs["run"]
    rows = model_rows(params, inputs)
    machine = run_info.get("machine", {})
    blocks: list[tuple] = [("h1", "IMDb sentiment: dense, SimpleRNN, LSTM and GRU compared")]
    if run_info:
        blocks.append(("p", f"Test split evaluated {run_info['date']} on {machine.get('cpu')}, "
                            f"{machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
                            f"GPUs: {', '.join(machine.get('gpus') or []) or 'none'}. Prepared data sha256 "
                            f"{run_info['data.sha256'][:16]}…; code at git commit {run_info['git.commit'][:10]}"
                            f"{' with uncommitted changes' if run_info['git.dirty'] else ''}. Report written "
                            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."))
    blocks.append(("p", "Model selection (tuning, best epochs) used the validation split only; each model below "
                        "was scored once on the 25,000 test reviews by the evaluate stage."))
    if missing:
        blocks += [("h2", "Missing results"), ("p", "Not available, so left out below: " + "; ".join(missing) + ".")]
    figure_data: dict[str, bytes] = {}

    def figure(name: str, drawn, caption: str) -> None:
        figure_data[name] = png(drawn)
        blocks.append(("figure", name, caption))

    if rows:
        blocks += [("h2", "Results"), ("table", results_table(rows))]
    if evaluation:
        tested = [r["model"] for r in rows if r["test"]]
        figure("test-accuracy.png", figures.accuracy_intervals(
            tested, *([evaluation[n][k] for n in tested] for k in
                      ("test/accuracy", "test/accuracy_ci_low", "test/accuracy_ci_high"))),
            "Test accuracy per model with 95% Wilson intervals")
        blocks += [("h2", "The tutorial's claims"),
                   ("p", f"Levels (\"about 88%\") count as reproduced within {100 * claims.TOLERANCE:g} "
                         "percentage point; "
                         f"comparisons need McNemar's exact p < {claims.ALPHA} on the test reviews; speed needs a "
                         f"{claims.SPEED_MARGIN:.0%} margin in seconds per epoch."),
                   ("table", claims_table(judged := claims.judge(
                       evaluation, p_value_map(inputs["pairwise"]),
                       {r["model"]: r["seconds_per_epoch"] for r in rows if r["kind"] == "default"},
                       relative_gradients(inputs["gradients"])))),
                   ("p", not_reproduced(judged, evaluation)),
                   ("h2", "Against the tutorial's numbers"), ("table", tutorial_table(evaluation))]
    if inputs["gradients"] is not None:
        relative = relative_gradients(inputs["gradients"])
        figure("gradients.png", figures.gradient_decay(inputs["gradients"]["steps_before_end"].tolist(),
                                                       {k: v.tolist() for k, v in relative.items()}),
               "Vanishing gradients: loss gradient per input step on validation reviews, relative to the last step")
    if inputs["history"]:
        blocks.append(("h2", "Learning curves"))
        figure("validation-accuracy.png", figures.validation_overlay(inputs["history"]),
               "Validation accuracy per epoch, default experiments")
        for name, history in inputs["history"].items():
            figure(f"curves-{name}.png", figures.learning_curves(history, name),
                   f"{name}: training (dots) and validation (line) accuracy and loss")
        figure("seconds-per-epoch.png", figures.seconds_per_epoch(
            [r["model"] for r in rows if r["kind"] == "default"],
            [r["seconds_per_epoch"] for r in rows if r["kind"] == "default"]), "Median seconds per training epoch")
    if inputs["tuning"]:
        blocks += [("h2", "Tuning"), ("p", "Best settings per architecture from its Optuna study, and what pruning "
                                           "saved: epochs trained against the epochs the same trials would have "
                                           "run unpruned."), ("table", tuning_table(inputs["tuning"]))]
        figure("tuning.png", figures.tuning_scatter(inputs["trials"]),
               "Validation accuracy of every tuning trial against maxlen and units")
    if inputs["stats"]:
        blocks += [("h2", "Review lengths"), ("p", "Tokens per review (with the start token) and the share of "
                                                   "reviews a maxlen cuts."), ("table", length_table(inputs["stats"]))]
    return blocks, figure_data


def main() -> None:
    params = config.load()
    inputs, missing = read_inputs(params)
    print(f"report: {sum(len(inputs[k]) for k in ('train', 'tuning'))} result files, "
          f"{len(inputs['evaluation'])} evaluated models" + (f"; missing {len(missing)}" if missing else ""),
          flush=True)
    blocks, figure_data = build(params, inputs, missing)
    markdown, page = render(blocks, figure_data)
    files = {FIGURES_DIR / name: data for name, data in figure_data.items()}
    write_outputs(files | {COMPARISON_MD: markdown, COMPARISON_HTML: page}, replace_folders=(FIGURES_DIR,))
    print(f"wrote {COMPARISON_MD}, {COMPARISON_HTML} and {len(figure_data)} figures in {FIGURES_DIR}"
          + (f"; missing: {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    run(main)
