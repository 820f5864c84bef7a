"""Does RMSprop update an embedding the same way on every Keras backend? One step, checked by hand.

A review in which word 1 occurs three times: the embedding's gradient has three slices for row 1. The
textbook RMSprop squares the row's summed gradient; Keras 3 on TensorFlow receives the gradient as
``tf.IndexedSlices`` and squares each occurrence before summing. Each backend runs in a child process;
prints which rule its update of row 1 matches. Measured 2026-11-28 (Keras 3.15.1): TensorFlow
per-occurrence squares, JAX the textbook rule, so the two backends train different optimisers for the
embedding (docs/results.md).

    .venv/bin/python bench/embedding_optimizer.py
"""

import argparse
import os
import subprocess
import sys

CHILD = r"""
import keras, numpy as np
rng = np.random.default_rng(0)
embedding, weights = rng.normal(size=(5, 2)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(5, 2), keras.layers.Flatten(),
                          keras.layers.Dense(1, activation="sigmoid")])
model.layers[0].set_weights([embedding])
model.layers[2].set_weights([weights, np.zeros(1, "float32")])
lr, rho, eps = 0.1, 0.9, 1e-7
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=lr, rho=rho, epsilon=eps), loss="binary_crossentropy")
x, y = np.array([[1, 1, 1, 2]]), np.array([[1.0]])
p = 1 / (1 + np.exp(-(embedding[x[0]].reshape(-1) @ weights[:, 0])))
slices = ((p - 1) * weights[:, 0]).reshape(4, 2)  # d loss / d embedding vector, per position
summed, squares = np.zeros_like(embedding), np.zeros_like(embedding)
for position, row in enumerate(x[0]):
    summed[row] += slices[position]
    squares[row] += slices[position] ** 2
model.train_on_batch(x, y)
after = model.layers[0].get_weights()[0][1]
for rule, velocity in (("textbook (square of the summed gradient)", (1 - rho) * summed ** 2),
                       ("per-occurrence squares", (1 - rho) * squares)):
    expected = embedding - lr * summed / np.sqrt(velocity + eps)
    print(f"{keras.backend.backend()}: {rule}: {'matches' if np.allclose(after, expected[1], atol=1e-5) else 'no'}")
"""


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    for backend in ("tensorflow", "jax"):
        env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
        print(done.stdout.strip() if done.returncode == 0 else f"{backend}: failed\n{done.stderr[-2000:]}")


if __name__ == "__main__":
    main()
