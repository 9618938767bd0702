"""The SDK side: the Campaign (SELECT → LABEL → TRAIN → INFER) and the learner adapters."""

from alloop.loop._export import export_labels
from alloop.loop._learner import FunctionLearner, Learner, SklearnLearner, TrainReport
from alloop.loop._remote import RemoteEngine
from alloop.loop._sharing import SharingPolicy
from alloop.loop._torch import ModelLearner, TorchLearner
from alloop.loop.campaign import CRASH_POINTS, Campaign, CampaignResult, LoopReport, StepResult
from alloop.loop.stream import StreamCampaign, StreamResult

__all__ = [
    "CRASH_POINTS",
    "Campaign",
    "CampaignResult",
    "FunctionLearner",
    "Learner",
    "LoopReport",
    "ModelLearner",
    "RemoteEngine",
    "SharingPolicy",
    "SklearnLearner",
    "StepResult",
    "StreamCampaign",
    "StreamResult",
    "TorchLearner",
    "TrainReport",
    "export_labels",
]
