"""The tutorial's own training code, the reference every training benchmark runs beside ours.

Models are written as the tutorial writes them (Sequential, no Input layer,
Embedding(10000, 32)); GRU gets the sigmoid the tutorial forgot, so both sides
train the same model, unless ``published=True`` asks for the head exactly as
published (bench/tutorial_reference.py). Timing is a bare callback, nothing else attached.
"""

import time

import keras
from keras import layers

NUM_WORDS = 10000


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def tutorial_model(architecture: str, maxlen: int, published: bool = False) -> keras.Model:
    """``published=True``: GRU ends in Dense(1) without a sigmoid, as the tutorial prints it (a bug)."""
    gru_output = layers.Dense(1) if published else layers.Dense(1, activation="sigmoid")
    head = {
        "dense": [layers.Flatten(), layers.Dense(1, activation="sigmoid")],
        "simplernn": [layers.SimpleRNN(32), layers.Dense(32, activation="relu"), layers.Dense(1, activation="sigmoid")],
        "lstm": [layers.LSTM(32), layers.Dense(1, activation="sigmoid")],
        "gru": [layers.GRU(32), gru_output],
    }[architecture]
    model = keras.Sequential([layers.Embedding(NUM_WORDS, 32), *head])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    return model


def tutorial_fit(architecture, maxlen, x_train, y_train, x_val, y_val, epochs):
    """Train as the tutorial does; return (model, seconds of each epoch)."""
    model = tutorial_model(architecture, maxlen)
    timer = EpochTimer()
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, validation_data=(x_val, y_val),
              callbacks=[timer], verbose=0)
    return model, timer.seconds
