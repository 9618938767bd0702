"""The model library: built-in models by name, and metrics over a fixed class list.

scikit-learn models (``logreg``, ``svm-rbf``, ``random-forest``, ``gradient-boosting``, ``knn``,
``gaussian-nb``, and ``naive-bayes`` on the word counts of texts), PyTorch models with MC dropout,
embeddings and training dynamics (``mlp``, ``cnn``; extra ``torch``), the ``minilm`` text classifier
(extra ``text``) and ``ensemble(BASE, k=K)`` committees. torch is imported only when a torch model is fit.

>>> [name for name, _ in list_models()][:2]
['logreg', 'svm-rbf']
>>> model_info("mlp").extra, model_info("minilm").data
('torch', 'text')
"""

from alloop.models._ensemble import EnsembleClassifier
from alloop.models._metrics import classification_metrics
from alloop.models._registry import MODELS, ModelInfo, build_model, list_models, model_info
from alloop.models._sklearn import predict_proba_full
from alloop.models._text import MiniLMClassifier, encode_texts
from alloop.models._torch import CNNClassifier, MLPClassifier, TorchClassifier

__all__ = [
    "CNNClassifier",
    "EnsembleClassifier",
    "MLPClassifier",
    "MODELS",
    "MiniLMClassifier",
    "ModelInfo",
    "TorchClassifier",
    "build_model",
    "classification_metrics",
    "encode_texts",
    "list_models",
    "model_info",
    "predict_proba_full",
]
