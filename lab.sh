#!/usr/bin/env bash
# One entry point for a fresh machine with Python 3.11, 3.12 or 3.13 and pip (the newest found is used).
#
#   ./lab.sh pipeline [--jobs N] [-f]    set up, then run the whole DVC pipeline (python -m pipeline.repro:
#                                        dvc repro per stage, independent stages side by side, one core each)
#   ./lab.sh test [pytest args]          set up, then run the test suite
#   ./lab.sh setup                       only create/refresh .venv
#   ./lab.sh shell                       a shell with .venv active (dvc, mlflow, optuna-dashboard)
#
# Setup makes .venv inside the project and installs the package with the exact
# versions of constraints.txt; it reruns only when pyproject.toml or
# constraints.txt changed. The default extra, cpu, installs JAX (the Keras backend used
# by default) and TensorFlow's CPU build (KERAS_BACKEND=tensorflow selects it);
# LAB_EXTRA=gpu installs JAX with CUDA 13 instead of JAX for the CPU, LAB_EXTRA=gpu-tensorflow TensorFlow's
# CUDA build alone. Offline: IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz.
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  # The newest supported Python found (3.13, 3.12, 3.11; the pins of constraints.txt install on each).
  local python=${PYTHON:-}
  if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1 &&
         "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
        python=$candidate; break
      fi
    done
  fi
  if [ -z "$python" ]; then
    echo "error: no Python 3.11, 3.12 or 3.13 found; install one or set PYTHON=/path/to/python3" >&2
    exit 2
  fi
  local extra=${LAB_EXTRA:-cpu}
  case "$extra" in cpu|gpu|gpu-tensorflow) ;;
    *) echo "error: LAB_EXTRA=$extra: must be cpu, gpu or gpu-tensorflow" >&2; exit 2;; esac
  # The CPU and CUDA builds of TensorFlow (and JAX's CUDA plugin) are different distributions beside one
  # module: installing one over the other leaves both. Another extra therefore rebuilds .venv from scratch.
  local installed
  installed=$(cat .venv/.lab-installed 2>/dev/null || true)
  if [ -n "$installed" ] && [ "${installed%% *}" != "$extra" ]; then
    echo "LAB_EXTRA changed (${installed%% *} -> $extra): rebuilding .venv" >&2
    rm -rf .venv
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local want
  want="$extra $(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
  if [ "$(cat .venv/.lab-installed 2>/dev/null)" != "$want" ]; then
    echo "setting up .venv ($extra): this takes a few minutes the first time" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extra,dev]"
    echo "$want" > .venv/.lab-installed
  fi
  export PATH="$PWD/.venv/bin:$PATH" VIRTUAL_ENV="$PWD/.venv"
  # DVC must not phone home (no network on many machines, and nothing to report).
  export DVC_NO_ANALYTICS=1
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  setup) setup ;;
  pipeline) setup; python -m pipeline.repro "$@" ;;   # dvc repro per stage, independent ones side by side
  test) setup; python -m pytest "$@" ;;
  shell) setup; exec "${SHELL:-bash}" ;;
  *) echo "usage: ./lab.sh {pipeline|test|setup|shell} [args]" >&2; exit 2 ;;
esac
