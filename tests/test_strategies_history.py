"""History strategies through a real SelectionEngine: each picks the records its time series singles out."""

from __future__ import annotations

import numpy as np
import pytest

from alloop import SelectionEngine, Snapshot
from alloop.errors import ConfigError
from alloop.strategies import all_strategies, make_strategy
from alloop.strategies.history import flip_scores, forgetting_weighted_scores, slope_scores

NAMES = ("prediction-flips", "confidence-variance", "uncertainty-slope", "cartography-ambiguous", "forgetting-weighted")


def _engine(strategy: str, series: list[np.ndarray], emb: np.ndarray | None = None) -> SelectionEngine:
    """An engine over records 0..n-1 that has ingested one snapshot per probs array in ``series``."""
    n = series[0].shape[0]
    engine = SelectionEngine(strategy=strategy, classes=[0, 1])
    engine.add_records(list(range(n)))
    for loop, probs in enumerate(series):
        engine.ingest(Snapshot(ids=list(range(n)), probs=probs, embeddings=emb), loop=loop)
        engine.loop = loop
    return engine


def _p(*tops: float) -> np.ndarray:
    t = np.array(tops)
    return np.stack([t, 1 - t], axis=1)


def test_all_are_discovered_with_history_needs():
    found = all_strategies()
    for name in NAMES:
        assert name in found and "history" in found[name].needs
    assert make_strategy("confidence-variance(measure='tod')").spec == "confidence-variance(measure='tod')"


def test_prediction_flips_prefers_the_record_whose_label_keeps_changing():
    series = [_p(0.9, 0.6, 0.45), _p(0.9, 0.4, 0.45), _p(0.9, 0.6, 0.45)]  # r1 flips twice, r2 is uncertain
    assert _engine("prediction-flips", series).recommend(1).ids.tolist() == [1]
    assert _engine("margin", series).recommend(1).ids.tolist() == [2]


def test_confidence_variance_and_tod_prefer_records_whose_outputs_move():
    series = [_p(0.9, 0.55, 0.52), _p(0.6, 0.55, 0.52), _p(0.95, 0.56, 0.52)]
    assert _engine("confidence-variance", series).recommend(1).ids.tolist() == [0]
    assert _engine("confidence-variance(measure='tod')", series).recommend(1).ids.tolist() == [0]
    assert _engine("margin", series).recommend(1).ids.tolist() == [2]


def test_uncertainty_slope_prefers_records_getting_less_certain():
    # r0 drifts from sure to unsure; r1 is the least certain now but getting surer
    series = [_p(0.99, 0.51), _p(0.9, 0.52), _p(0.8, 0.53), _p(0.7, 0.54)]
    for spec in ("uncertainty-slope", "uncertainty-slope(series='confidence')", "uncertainty-slope(series='margin')"):
        assert _engine(spec, series).recommend(1).ids.tolist() == [0]
    assert _engine("margin", series).recommend(1).ids.tolist() == [1]


def test_cartography_ambiguous_uses_labeled_neighbours_dynamics_or_falls_back():
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0], [0.05, 0.1], [5.05, 0.1]])
    series = [_p(0.9, 0.9, 0.9, 0.9, 0.9, 0.7), _p(0.9, 0.9, 0.9, 0.9, 0.6, 0.8)]
    engine = _engine("cartography-ambiguous", series, emb)
    engine.history.neighbours = 2
    engine.observe_labels([0, 1, 2, 3], [0, 0, 1, 1])
    # no dynamics: the record's own confidence std across loops (0.15 for record 4, 0.05 for record 5)
    assert engine.recommend(1).ids.tolist() == [4]
    # records 2 and 3 were ambiguous in training (true-label probability swinging), 0 and 1 easy
    tp = np.array([[0.9, 0.95, 0.97], [0.92, 0.96, 0.98], [0.2, 0.8, 0.3], [0.7, 0.2, 0.9]])
    engine.history.update_dynamics(engine.pool.index_of([0, 1, 2, 3]), tp)
    sel = engine.recommend(2)
    assert sel.ids.tolist() == [5, 4] and sel.scores[0] > sel.scores[1]


def test_forgetting_weighted_equals_margin_without_dynamics_and_follows_forgetting_with_them():
    emb = np.array([[0.0], [10.0], [0.2], [9.8], [0.1], [9.9]])
    series = [_p(0.5, 0.5, 0.5, 0.5, 0.6, 0.62)]
    engine = _engine("forgetting-weighted", series, emb)
    engine.history.neighbours = 2
    engine.observe_labels([0, 1, 2, 3], [0, 1, 0, 1])
    assert engine.recommend(1).ids.tolist() == [4]  # = margin
    # records 1 and 3 (near record 5) were forgotten during training three times
    tp = np.array([[0.9, 0.95], [0.9, 0.1], [0.9, 0.9], [0.8, 0.2]])
    engine.history.update_dynamics(engine.pool.index_of([0, 1, 2, 3]), tp)
    engine.history.update_dynamics(engine.pool.index_of([1]), np.array([[0.9, 0.1]]))
    assert engine.recommend(1).ids.tolist() == [5]


def test_score_functions_and_validation():
    assert flip_scores(np.array([3.0]), np.array([2.0]), rate=False).tolist() == [3.0]
    assert slope_scores(np.array([0.5]), "entropy").tolist() == [0.5]
    np.testing.assert_allclose(forgetting_weighted_scores(np.array([[0.5, 0.5]]), np.array([1.0])), [2.0])
    series = [_p(0.9, 0.6), _p(0.8, 0.6)]
    with pytest.raises(ConfigError, match="'measure' parameter of ConfidenceVariance"):
        _engine("confidence-variance(measure='std')", series).recommend(1)
    with pytest.raises(ConfigError, match="'series' parameter of UncertaintySlope"):
        _engine("uncertainty-slope(series='gini')", series).recommend(1)
