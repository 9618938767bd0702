"""Query by committee on ensemble (or MC-dropout) members: vote entropy, KL to consensus, JS, margins.

``samples`` has shape ``(S, n, C)``: one probability row per committee member and record. Hard votes are
each member's most probable class (ties: the lower class). Natural logarithms, ``0 log 0 = 0``.

Note: the mean KL divergence of the members to their consensus equals the equally weighted
(generalised) Jensen–Shannon divergence of the members and equals BALD's ``H[mean p] - mean H[p]``; so
``kl-consensus`` ranks like ``bald``. ``js-divergence`` here is the *pairwise* mean, a different quantity.

>>> import numpy as np
>>> samples = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.6, 0.4]]])  # 3 members, 1 record
>>> vote_entropy_scores(samples).round(4).tolist()  # votes 2:1
[0.6365]
>>> vote_margin_scores(samples).round(4).tolist()
[-0.3333]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alloop.strategies.bayesian import _as_samples, _entr, _SampleStrategy, _votes
from alloop.strategies.uncertainty import margin_scores

__all__ = [
    "ConsensusMargin",
    "JSDivergence",
    "KLConsensus",
    "VoteEntropy",
    "VoteMargin",
    "consensus_margin_scores",
    "js_divergence_scores",
    "kl_consensus_scores",
    "vote_entropy_scores",
    "vote_margin_scores",
]


def vote_entropy_scores(samples: np.ndarray) -> np.ndarray:
    """Entropy of the fraction of members voting for each class."""
    p = _as_samples(samples)
    return _entr(_votes(p) / p.shape[0]).sum(axis=1)


def vote_margin_scores(samples: np.ndarray) -> np.ndarray:
    """``-(V1 - V2) / S``: minus the gap between the two most voted classes' vote counts, per member."""
    p = _as_samples(samples)
    votes = _votes(p).astype(np.float64)
    if votes.shape[1] < 2:
        return -votes[:, 0] / p.shape[0]
    part = np.partition(votes, votes.shape[1] - 2, axis=1)
    return -(part[:, -1] - part[:, -2]) / p.shape[0]


def consensus_margin_scores(samples: np.ndarray) -> np.ndarray:
    """Margin score (``-(p1 - p2)``) of the consensus, the members' mean probabilities."""
    return margin_scores(_as_samples(samples).mean(axis=0))


def kl_consensus_scores(samples: np.ndarray) -> np.ndarray:
    """``mean_s KL(p_s || mean p)``: the members' mean divergence from their consensus, clipped at 0."""
    p = _as_samples(samples)
    consensus = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(consensus)[None]), 0.0)
    return np.maximum(terms.sum(axis=2).mean(axis=0), 0.0)


def js_divergence_scores(samples: np.ndarray) -> np.ndarray:
    """Mean over member pairs of ``JS(p_i, p_j) = H((p_i + p_j)/2) - (H(p_i) + H(p_j))/2``; 0 for one member.

    Costs ``O(S²·n·C)``: one pass per pair of members.
    """
    p = _as_samples(samples)
    s, n, _ = p.shape
    if s < 2:
        return np.zeros(n)
    own = _entr(p).sum(axis=2)  # (S, n)
    total = np.zeros(n)
    for i in range(s - 1):
        mixed = _entr((p[i][None] + p[i + 1 :]) / 2.0).sum(axis=2)  # (S-i-1, n)
        total += (mixed - (own[i][None] + own[i + 1 :]) / 2.0).sum(axis=0)
    return np.maximum(total / (s * (s - 1) / 2), 0.0)


class _CommitteeStrategy(_SampleStrategy):
    """Same contract as the Bayesian sample strategies (score = f(samples)); only the family differs."""

    family: ClassVar[str] = "committee"


class VoteEntropy(_CommitteeStrategy):
    """Vote entropy: label the records whose committee members' hard votes disagree most (Dagan & Engelson 1995)."""

    name = "vote-entropy"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return vote_entropy_scores(samples)


class KLConsensus(_CommitteeStrategy):
    """KL to consensus ("max disagreement"): mean KL of each member to the committee mean (McCallum & Nigam 1998).

    Numerically this equals the generalised Jensen–Shannon divergence with equal weights and BALD.
    """

    name = "kl-consensus"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return kl_consensus_scores(samples)


class JSDivergence(_CommitteeStrategy):
    """Jensen–Shannon: label the records with the highest mean pairwise JS divergence between members (Lin 1991).

    Pairwise rather than the multi-distribution form of Melville & Mooney (2004), which with equal weights
    is exactly ``kl-consensus``. Bounded by ``log 2``; costs ``O(S²)`` per record.
    """

    name = "js-divergence"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return js_divergence_scores(samples)


class VoteMargin(_CommitteeStrategy):
    """Vote margin: label the records whose two most voted classes are closest in votes (Körner & Wrobel 2006)."""

    name = "vote-margin"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return vote_margin_scores(samples)


class ConsensusMargin(_CommitteeStrategy):
    """Consensus margin: smallest top-two gap of the members' mean probabilities (Körner & Wrobel 2006)."""

    name = "consensus-margin"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return consensus_margin_scores(samples)
