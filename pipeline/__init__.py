"""imdb-rnn-lab: IMDb sentiment with Keras recurrent networks, run by DVC, tracked by MLflow."""

import importlib.util
import os

# The Keras backend, chosen before anything imports Keras: KERAS_BACKEND when set, else JAX where it is
# installed (./lab.sh's default cpu extra; 1.2-7x faster epochs than TensorFlow on these CPUs, see
# docs/measurements.md), else TensorFlow (the gpu extra installs only TensorFlow's CUDA build).
if not os.environ.get("KERAS_BACKEND"):
    os.environ["KERAS_BACKEND"] = "jax" if importlib.util.find_spec("jax") else "tensorflow"
