"""Continuous-time rate RNNs (Kim et al. 2019: Dale's law, trainable synaptic τ, sigmoid units), a
discrete vanilla RNN, the ``Rollout`` every model returns, and the project's one training loop."""

from .rate_rnn import ACTIVATIONS, DiscreteRNN, DiscreteRNNConfig, RateRNN, RateRNNConfig
from .rollout import Rollout

__all__ = ["ACTIVATIONS", "DiscreteRNN", "DiscreteRNNConfig", "RateRNN", "RateRNNConfig", "Rollout"]
