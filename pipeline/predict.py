"""Sentiment of raw review text, from the registered champion (or any MLflow model URI).

Reads   the model from the MLflow store (MLFLOW_TRACKING_URI, or mlflow.db in the project root)
Writes  one line per review to stdout: label, positive-class probability, the review's start
Run     python -m pipeline.predict "A wonderful film."
        python -m pipeline.predict --file reviews.txt     (one review per line; - reads stdin)
        python -m pipeline.predict --model models:/imdb-sentiment@challenger "..."
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.stage import UserError, run

DEFAULT_MODEL = "models:/imdb-sentiment@champion"


def read_reviews(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file (or stdin for "-"), each one review."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line} is not valid UTF-8; save the reviews as UTF-8 text") from None
    return [line for line in text.splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description="Classify IMDb-style reviews as positive or negative.")
    parser.add_argument("reviews", nargs="*", help="review texts (quote each one)")
    parser.add_argument("--file", help="a file with one review per line; - for stdin")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    args = parser.parse_args()
    reviews = list(args.reviews) + (read_reviews(args.file) if args.file else [])
    if not reviews:
        raise UserError("no review given: pass review texts as arguments, or --file FILE (one per line, - = stdin)")

    import mlflow

    from pipeline import tracking

    tracking.start(tracking.project_root(Path.cwd()), os.environ.get("MLFLOW_TRACKING_URI"))
    try:
        model = mlflow.pyfunc.load_model(args.model)
    except (mlflow.exceptions.MlflowException, OSError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"model {args.model}: cannot load ({reason}); register one with `dvc repro register`, "
                        "or name another with --model") from None
    predictions = model.predict(reviews)
    for review, row in zip(reviews, predictions.itertuples(index=False), strict=True):
        preview = " ".join(review.split())
        print(f"{row.label}\t{row.probability:.4f}\t{preview[:70] + ('…' if len(preview) > 70 else '')}")


if __name__ == "__main__":
    run(main, end_process=True)
