"""SharingPolicy: what leaves the client — levels, projection, quantisation, hashed ids — without a server."""

from __future__ import annotations

import numpy as np
import pytest

from alloop import Snapshot
from alloop.errors import ConfigError, DataError
from alloop.loop import SharingPolicy


def _snap(n: int = 50, dim: int = 16, scale: float = 1.0) -> Snapshot:
    rng = np.random.default_rng(0)
    return Snapshot(
        ids=np.arange(n),
        probs=rng.dirichlet(np.ones(3), size=n),
        embeddings=scale * rng.normal(size=(n, dim)),
        samples=rng.dirichlet(np.ones(3), size=(4, n)),
        dynamics={"p_true": rng.random((n, 2))},
    )


def test_levels_let_through_exactly_their_kinds():
    snap = _snap()
    kinds = {
        level: {k for k in ("embeddings", "samples", "dynamics") if getattr(SharingPolicy(level=level).apply(snap), k)
                is not None}
        for level in ("probs", "probs+embeddings", "probs+samples", "full")
    }
    assert kinds == {
        "probs": set(),
        "probs+embeddings": {"embeddings"},
        "probs+samples": {"samples"},
        "full": {"embeddings", "samples", "dynamics"},
    }
    shared = SharingPolicy().apply(snap)
    assert shared.probs is snap.probs and shared.ids.tolist() == snap.ids.tolist()  # nothing copied or changed


def test_projection_is_seeded_and_keeps_distances_roughly():
    snap = _snap(n=40, dim=256)
    a = SharingPolicy(level="probs+embeddings", embedding_dims=64, seed=1).apply(snap).embeddings
    b = SharingPolicy(level="probs+embeddings", embedding_dims=64, seed=1).apply(snap).embeddings
    c = SharingPolicy(level="probs+embeddings", embedding_dims=64, seed=2).apply(snap).embeddings
    assert a.shape == (40, 64) and np.array_equal(a, b) and not np.allclose(a, c)
    d_in = np.linalg.norm(snap.embeddings[:, None] - snap.embeddings[None], axis=2)[np.triu_indices(40, 1)]
    d_out = np.linalg.norm(a[:, None] - a[None], axis=2)[np.triu_indices(40, 1)]
    ratio = d_out / d_in
    assert 0.6 < ratio.min() and ratio.max() < 1.4  # Johnson–Lindenstrauss: pairwise distances within ~40 %


def test_float16_quantisation_and_its_overflow_is_a_clear_error():
    snap = _snap()
    out = SharingPolicy(level="full", quantize="float16").apply(snap)
    assert out.embeddings.dtype == np.float16 and out.samples.dtype == np.float16
    np.testing.assert_allclose(out.embeddings, snap.embeddings, rtol=1e-3, atol=1e-3)
    with pytest.raises(DataError, match="embeddings .*sharing policy"):
        SharingPolicy(level="probs+embeddings", quantize="float16").apply(_snap(scale=1e6))


def test_hashed_ids_need_a_key_and_depend_on_it():
    with pytest.raises(ConfigError, match="needs a 'key'"):
        SharingPolicy(hash_ids=True).apply(_snap())
    snap = _snap(n=5)
    one = SharingPolicy(hash_ids=True, key="k1").apply(snap).ids
    again = SharingPolicy(hash_ids=True, key="k1").apply(snap).ids
    other = SharingPolicy(hash_ids=True, key="k2").apply(snap).ids
    assert one.tolist() == again.tolist() and not set(one.tolist()) & set(other.tolist())
    assert all(isinstance(h, str) and len(h) == 32 for h in one) and len(set(one.tolist())) == 5
