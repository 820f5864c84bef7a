#!/usr/bin/env bash
# The README's screenshots, taken with a real browser (Debian's chromium, headless) from a project's own
# stores after a full run: the report, `mlflow ui` and `optuna-dashboard`, both on 127.0.0.1 and stopped after.
#   docs/images/take.sh [project-dir]        (default: this clone; needs .venv, mlflow.db, optuna.db, reports/)
# Installs chromium with apt-get when it is missing (root, Debian).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "${1:-$here/../..}" && pwd)
venv=$(cd "$here/../.." && pwd)/.venv/bin
command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
mlflow_port=${MLFLOW_PORT:-5055}
optuna_port=${OPTUNA_PORT:-8085}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
cd "$project"
"$venv/mlflow" ui --port "$mlflow_port" >/dev/null 2>&1 & pids+=($!)
"$venv/optuna-dashboard" sqlite:///optuna.db --port "$optuna_port" >/dev/null 2>&1 & pids+=($!)
for url in "http://127.0.0.1:$mlflow_port/health" "http://127.0.0.1:$optuna_port/api/studies"; do
  for _ in $(seq 120); do curl -sf "$url" >/dev/null && break; sleep 1; done
done
experiment=$("$venv/python" -c "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); \
print(mlflow.get_experiment_by_name('imdb-sentiment').experiment_id)")
study=$(curl -sf "http://127.0.0.1:$optuna_port/api/studies" | "$venv/python" -c "import json, sys; \
print(next(s['study_id'] for s in json.load(sys.stdin)['study_summaries'] if s['study_name'].startswith('lstm-')))")
shot() {  # shot <file> <width,height> <url>
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --window-size="$2" --virtual-time-budget=20000 --screenshot="$here/$1" "$3" 2>/dev/null
  echo "wrote docs/images/$1"
}
shot report.png 1400,1100 "file://$project/reports/comparison.html"
shot mlflow.png 1600,900 "http://127.0.0.1:$mlflow_port/#/experiments/$experiment/runs"
shot optuna-dashboard.png 1600,1000 "http://127.0.0.1:$optuna_port/dashboard/studies/$study"
