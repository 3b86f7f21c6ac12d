"""Continuous-time rate RNNs (Kim et al. 2019: Dale's law, trainable synaptic τ, sigmoid units), a
discrete vanilla RNN, the ``Rollout`` every model returns, the project's one training loop, and ``seeds``: the
named random streams (``seeds.stream(seed, seeds.VALIDATION)``)."""

from . import seeds
from .checkpoint import CheckpointError, load_checkpoint, load_model, register_model, save_checkpoint
from .rate_rnn import ACTIVATIONS, DiscreteRNN, DiscreteRNNConfig, RateRNN, RateRNNConfig
from .rollout import Rollout
from .training import TrainConfig, TrainingDiverged, TrainResult, evaluate, resolve_device, task_loss, train

__all__ = [
    "ACTIVATIONS",
    "CheckpointError",
    "DiscreteRNN",
    "DiscreteRNNConfig",
    "RateRNN",
    "RateRNNConfig",
    "Rollout",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "evaluate",
    "load_checkpoint",
    "load_model",
    "register_model",
    "resolve_device",
    "save_checkpoint",
    "seeds",
    "task_loss",
    "train",
]
