"""Console entry points: ``imdb-lab <stage> [options]`` and ``imdb-predict``.

``imdb-lab train --experiment lstm --seed 1`` is ``python -m pipeline.train --experiment lstm
--seed 1``; dvc.yaml keeps the ``python -m`` form. Every stage answers ``--help`` without side
effects.
"""

from __future__ import annotations

import runpy
import sys

STAGES = {
    "download": "copy or download the IMDb archive",
    "prepare": "split, tokenise and store the reviews",
    "train": "train one experiment with one seed",
    "tune": "run one architecture's Optuna study",
    "confirm": "retrain a study's best configuration with one seed",
    "speed": "time each architecture's epochs side by side",
    "evaluate": "score every model once on the test split; probe claim 5",
    "register": "register the champion in MLflow's model registry",
    "report": "write reports/comparison.md and .html",
    "predict": "classify review texts with the registered champion",
    "repro": "the whole pipeline, independent stages side by side (./lab.sh pipeline)",
}


def usage() -> str:
    width = max(map(len, STAGES))
    lines = [f"  {name:<{width}}  {what}" for name, what in STAGES.items()]
    return ("usage: imdb-lab <stage> [options]    (imdb-lab <stage> --help for a stage's options)\n\n"
            "stages (dvc repro runs them in order; see dvc.yaml), and repro, which runs them all:\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    stage, *rest = argv
    if stage not in STAGES:
        print(f"error: imdb-lab: unknown stage {stage!r}; must be one of {', '.join(STAGES)}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"imdb-lab {stage}", *rest]
    runpy.run_module(f"pipeline.{stage}", run_name="__main__")  # sys.argv[0] stays "imdb-lab <stage>"


def predict() -> None:
    main(["predict", *sys.argv[1:]])
