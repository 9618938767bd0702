"""The model library: built-in scikit-learn models by name, and metrics over a fixed class list.

>>> [name for name, _ in list_models()][:2]
['logreg', 'svm-rbf']
"""

from alloop.models._metrics import classification_metrics
from alloop.models._sklearn import MODELS, ModelInfo, build_model, list_models, predict_proba_full

__all__ = ["MODELS", "ModelInfo", "build_model", "classification_metrics", "list_models", "predict_proba_full"]
