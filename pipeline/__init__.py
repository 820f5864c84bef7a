"""imdb-rnn-lab: IMDb sentiment with Keras recurrent networks, run by DVC, tracked by MLflow."""

import ctypes
import importlib.util
import os
import sys

# Importing the package does two things: fixes glibc's malloc threshold, and sets the environment Keras reads
# when it is first imported.
#
# glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so the next large
# blocks come from the heap, where XLA's and LLVM's freed buffers stay fragmented and resident: a
# maxlen-500 LSTM replicate peaked at 1.83 GB, 1.03 GB with the threshold fixed at glibc's default of
# 128 KiB (blocks above it are mapped and returned to the system when freed; same epoch times,
# docs/measurements.md). Setting any MALLOC_*_ variable yourself leaves malloc to it.
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
if sys.platform.startswith("linux") and not any(name.startswith("MALLOC_") for name in os.environ):
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): its own allocator stays
        pass

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
