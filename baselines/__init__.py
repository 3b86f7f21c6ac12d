"""Baselines trained on the same task as the rate and spiking networks: a GRU, FORCE-trained
echo-state networks (rate, Sussillo & Abbott 2009; spiking, Nicola & Clopath 2017) and LFADS fitted
to the spikes. The GRU family (vanilla, GRU, LSTM, UGRNN) is in ``rnns``, LFADS in ``lfads`` (its ``fit`` is
``baselines.lfads.fit``: the package namespace keeps the module's own names)."""

from . import lfads
from .chaos import chaos_trajectories, lyapunov_exponents, lyapunov_vs_gain, suppression_map
from .force import ForceConfig, ForceFit, ForceRNN, ForceTrainConfig, RLSError, fit_force, rls_update
from .lfads import LFADS, LFADSConfig, LFADSResult
from .rnns import ARCHITECTURES, BaselineRNN, BaselineRNNConfig
from .spiking_force import SpikingForce, SpikingForceConfig, fit_spiking_force, simulate_spiking_force

__all__ = ["ARCHITECTURES", "LFADS", "BaselineRNN", "BaselineRNNConfig", "LFADSConfig", "LFADSResult", "lfads"]
__all__ += [  # FORCE (rate and spiking) and the chaos exercises
    "ForceConfig", "ForceFit", "ForceRNN", "ForceTrainConfig", "RLSError", "SpikingForce", "SpikingForceConfig",
    "chaos_trajectories", "fit_force", "fit_spiking_force", "lyapunov_exponents", "lyapunov_vs_gain", "rls_update",
    "simulate_spiking_force", "suppression_map",
]
