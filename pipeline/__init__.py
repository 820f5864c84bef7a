"""imdb-rnn-lab: IMDb sentiment with Keras recurrent networks, run by DVC, tracked by MLflow."""
