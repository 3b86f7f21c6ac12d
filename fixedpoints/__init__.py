"""Fixed and slow points of any recurrent model, their linearisation, topology and continuation, plots.

``find(model, states, inputs)`` accepts an object with ``step``/``velocity``, a callable ``f(x, u)`` or a
stock ``nn.RNN``/``GRU``/``LSTM``/``*Cell`` and returns ``FixedPoints``; ``summarize`` gives the run summary's
entry; spiking models are analysed through ``surrogate_for(model)``.
"""

from .adapters import Dynamics, dynamics_of, surrogate_for
from .dedup import outlier_mask, unique_lowest_q
from .find import check_map, find, sample_starts, state_trajectories, summarize
from .linear import count_unstable, eigen, jacobians
from .result import PCA, FixedPoints
from .solver import SolverConfig

__all__ = [
    "PCA", "Dynamics", "FixedPoints", "SolverConfig", "check_map", "count_unstable", "dynamics_of", "eigen", "find",
    "jacobians", "outlier_mask", "sample_starts", "state_trajectories", "summarize", "surrogate_for",
    "unique_lowest_q",
]
