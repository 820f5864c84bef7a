"""Do two full runs give the same accuracy within the seed spread? Compares two project folders.

    python bench/compare_runs.py RUN_A RUN_B [--labels A B]

For runs that are expected to differ in their numbers but not in what they find (another Keras
backend, another batching), as opposed to bench/rerun_identical.py, which expects every number equal.
Reads each run's reports/evaluation/summary.json and prints, per model trained with several seeds in
both runs, the test accuracy of each run (mean ± sd over seeds, 95% t-interval), the difference of
the means, and Welch's two-sided t-test. The rule, decided before looking: a model is "within the
seed spread" when Welch's p >= 0.05 (no difference the seeds can tell apart) or the difference of the
means is at most the larger of the two seed standard deviations. Exits 1 if any model is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy import stats


def summary(run: Path) -> dict:
    return json.loads((run / "reports/evaluation/summary.json").read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs=2, type=Path)
    parser.add_argument("--labels", nargs=2, default=["A", "B"])
    args = parser.parse_args()
    a, b = (summary(run) for run in args.runs)
    la, lb = args.labels
    print(f"| model | {la} test accuracy | {lb} test accuracy | {lb} − {la} | Welch p | within the seed spread |")
    print("|---|---|---|---|---|---|")
    failed = []
    for model in a:
        if model not in b or a[model]["n"] < 2 or b[model]["n"] < 2:
            continue
        x, y = a[model]["test/accuracy"], b[model]["test/accuracy"]
        p = stats.ttest_ind(x["values"], y["values"], equal_var=False).pvalue
        difference = y["mean"] - x["mean"]
        within = p >= 0.05 or abs(difference) <= max(x["sd"], y["sd"])
        failed += [] if within else [model]

        def cell(d: dict) -> str:
            return f"{d['mean']:.4f} ± {d['sd']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"

        print(f"| `{model}` | {cell(x)} | {cell(y)} | {difference:+.4f} | {p:.2g} | {'yes' if within else '**no**'} |")
    print("rule: within the seed spread when Welch's p >= 0.05 or |difference| <= the larger seed sd")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
