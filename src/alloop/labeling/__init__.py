"""Labeling: providers (simulated oracle and crowd, people, Label Studio, webhooks), the task queue with
leases, annotators, allocation — see docs/labeling.md."""

from alloop.labeling._provider import LabelEvent, LabelProvider, SimulatedOracle
from alloop.labeling.allocation import Allocator, GreedyAllocator, RandomAllocator, RoundRobinAllocator
from alloop.labeling.annotators import AnnotatorProfile, Annotators, AnnotatorStatus
from alloop.labeling.autolabel import (
    AutoLabeler,
    ThresholdChoice,
    choose_threshold,
    clopper_pearson_lower,
    wilson_lower,
)
from alloop.labeling.consensus import (
    ConsensusResult,
    DawidSkene,
    DynamicOverlap,
    MajorityVote,
    OneCoinDawidSkene,
    OverlapDecision,
    add_counts,
    crowd_aggregator,
    dawid_skene,
    majority_vote,
    make_aggregator,
    one_coin_dawid_skene,
)
from alloop.labeling.crowd import CrowdAnnotator, SimulatedCrowd
from alloop.labeling.labelsim import simulate_labels
from alloop.labeling.providers import (
    CallbackServer,
    HumanProvider,
    LabelStudioProvider,
    WebhookProvider,
    sign_body,
    verify_signature,
)
from alloop.labeling.tasks import AnnotatorView, Lease, TaskQueue, TaskView
from alloop.labeling.weak import (
    ABSTAIN,
    LabelingFunction,
    LabelModel,
    LFStats,
    apply_lfs,
    label_coverage,
    labeling_function,
    lf_analysis,
    weak_label_events,
)
from alloop.labeling.web import LabelingService, WebHumanProvider

__all__ = [
    "ABSTAIN",
    "add_counts",
    "Allocator",
    "AnnotatorProfile",
    "Annotators",
    "AnnotatorStatus",
    "AnnotatorView",
    "apply_lfs",
    "AutoLabeler",
    "CallbackServer",
    "choose_threshold",
    "clopper_pearson_lower",
    "ConsensusResult",
    "crowd_aggregator",
    "CrowdAnnotator",
    "dawid_skene",
    "DawidSkene",
    "DynamicOverlap",
    "GreedyAllocator",
    "HumanProvider",
    "label_coverage",
    "LabelEvent",
    "labeling_function",
    "LabelingFunction",
    "LabelingService",
    "LabelModel",
    "LabelProvider",
    "LabelStudioProvider",
    "Lease",
    "lf_analysis",
    "LFStats",
    "majority_vote",
    "MajorityVote",
    "make_aggregator",
    "one_coin_dawid_skene",
    "OneCoinDawidSkene",
    "OverlapDecision",
    "RandomAllocator",
    "RoundRobinAllocator",
    "sign_body",
    "simulate_labels",
    "SimulatedCrowd",
    "SimulatedOracle",
    "TaskQueue",
    "TaskView",
    "ThresholdChoice",
    "verify_signature",
    "weak_label_events",
    "WebHumanProvider",
    "WebhookProvider",
    "wilson_lower",
]
