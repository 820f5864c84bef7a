"""imdb-rnn-lab: IMDb sentiment with Keras recurrent networks, run by DVC, tracked by MLflow."""

import ctypes
import importlib.util
import os
import sys

# The one thing importing the package does: the environment Keras reads when it is first imported.
# TensorFlow's C++ start-up chatter is not our progress.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The Keras backend, chosen before anything imports Keras: KERAS_BACKEND when set, else JAX where it is
# installed (./lab.sh's default cpu extra; 1.1-7x faster epochs than TensorFlow on these CPUs, see
# docs/measurements.md), else TensorFlow (the gpu-tensorflow extra installs only TensorFlow's CUDA build).
if not os.environ.get("KERAS_BACKEND"):
    os.environ["KERAS_BACKEND"] = "jax" if importlib.util.find_spec("jax") else "tensorflow"
# JAX's persistent compilation cache, shared by every stage and clone of this user (JAX_COMPILATION_CACHE_DIR
# overrides): a replicate, a confirm run or evaluate reuses the steps an earlier process compiled for the same
# shapes instead of compiling them again (25 s of a 43 s first LSTM epoch at maxlen 500, docs/measurements.md).
# The same executable either way, so the same numbers. A size limit turns on JAX's file lock, so stages side
# by side read and write it safely; an unreadable entry is only a warning and a recompile.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "imdb-rnn-lab", "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 2**30))
# Any other value (or one not installed) would fail deep inside Keras' import with a traceback: say it in
# one line, as every stage says bad input, before anything is written.
_SUPPORTED = ("jax", "tensorflow")
if os.environ["KERAS_BACKEND"] not in _SUPPORTED or not importlib.util.find_spec(os.environ["KERAS_BACKEND"]):
    _installed = [name for name in _SUPPORTED if importlib.util.find_spec(name)]
    print(f"error: KERAS_BACKEND={os.environ['KERAS_BACKEND']}: must be jax or tensorflow "
          f"(installed here: {', '.join(_installed) or 'neither; run ./lab.sh setup'})", file=sys.stderr)
    raise SystemExit(2)


def trim_heap() -> None:
    """Give the free pages inside the heap back to the system (glibc's ``malloc_trim``); elsewhere nothing.

    glibc raises its mmap threshold each time a large block is freed, so later large blocks (XLA's
    buffers, LLVM's while compiling, the gradient probes') come from the heap, and once freed they stay
    resident between live blocks. Trimming after each epoch and probe returns them at no measurable
    cost; fixing the threshold instead slowed every step (numbers: docs/measurements.md).
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): its own allocator stays
            pass
