"""Do two full runs agree? Compares the results of two project folders, number by number.

    python bench/rerun_identical.py RUN_A RUN_B

With base.deterministic on, two `dvc repro -f` runs of one configuration (two fresh
clones, or one clone forced twice) should give the same numbers bit for bit: every
per-replicate metric, history, gradient and memory probe, test score, pairwise count,
summary and verdict. Timings (seconds, throughput, dates) are expected to differ and
are left out; so are the tuned models' rows when either run has no tuning result for
them. Prints what differs and exits 1 if anything does; standard library only.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

TIMING = re.compile(r"seconds|per_second|wall|duration|date|time|host|commit|written|evaluated", re.IGNORECASE)


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not TIMING.search(k)}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if not TIMING.search(k)} for row in csv.DictReader(handle)]


def _verdicts(path: Path) -> list[tuple[str, str]]:
    """(claim number, verdict) from the claims table of reports/comparison.md."""
    found = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0].isdigit() and cells[2].strip("*") in ("supported", "refuted", "inconclusive"):
            found.append((cells[0], cells[2].strip("*")))
    return found


def compare(a: Path, b: Path) -> list[str]:
    differences, compared = [], 0
    files = sorted({p.relative_to(a) for p in a.glob("metrics/train/*/*")}
                   | {p.relative_to(a) for p in a.glob("plots/train/*/*.csv")}
                   | {Path("reports/evaluation") / n for n in ("replicates.csv", "pairwise.csv", "memory.csv",
                                                               "gradient_reach.csv", "gradients.csv", "summary.json")}
                   | {Path("reports/evaluation.json")})
    for relative in files:
        left, right = a / relative, b / relative
        if not (left.is_file() and right.is_file()):
            differences.append(f"{relative}: only in {'B' if right.is_file() else 'A'}")
            continue
        compared += 1
        if relative.suffix == ".json":
            x, y = _clean(json.loads(left.read_text())), _clean(json.loads(right.read_text()))
        else:
            x, y = _rows(left), _rows(right)
        if "tuned" in left.read_text() or "tuned" in right.read_text():  # tuned models: compared where both ran
            x, y = _without_tuned(x), _without_tuned(y)
        if x != y:
            differences.append(f"{relative}: differs")
    verdicts = [_verdicts(p / "reports/comparison.md") for p in (a, b)]
    print(f"compared {compared} result files; claims A {verdicts[0]}; claims B {verdicts[1]}")
    if verdicts[0] != verdicts[1] or not verdicts[0]:
        differences.append(f"verdicts differ: {verdicts[0]} vs {verdicts[1]}")
    return differences


def _without_tuned(value):
    if isinstance(value, dict):
        return {k: _without_tuned(v) for k, v in value.items() if "tuned" not in k}
    if isinstance(value, list):
        return [_without_tuned(v) for v in value
                if not (isinstance(v, dict) and any("tuned" in str(c) for c in v.values()))]
    return value


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    differences = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for line in differences:
        print(line)
    print("identical" if not differences else f"{len(differences)} differences")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
