"""The servable model as MLflow "models from code": this file is logged and run when the model loads.

Logging a file instead of a pickled object means loading a registered model executes
this short, reviewable code, not arbitrary pickled bytes. See pipeline/serving.py.
"""

from mlflow.models import set_model

from pipeline.serving import SentimentModel

set_model(SentimentModel())
