"""Fixed and slow points of any recurrent model, their linearisation, topology and continuation, plots.

``find(model, states, inputs)`` accepts an object with ``step``/``velocity``, a callable ``f(x, u)`` or a
stock ``nn.RNN``/``GRU``/``LSTM``/``*Cell`` and returns ``FixedPoints``; ``summarize`` gives the run summary's
entry; ``topology`` links saddles to attractors; ``continuation`` follows points across inputs; spiking
models are analysed through ``surrogate_for(model)``.
"""

from .adapters import Dynamics, dynamics_of, surrogate_for
from .compare import compare_topology, topology_summary
from .continuation import Continuation, continuation
from .dedup import outlier_mask, unique_lowest_q
from .find import check_map, find, find_slow_points, sample_starts, state_trajectories, summarize
from .linear import count_unstable, eigen, jacobians
from .plots import plot_eigenvalues, plot_fixed_points
from .result import PCA, FixedPoints
from .similarity import METHODS as SIMILARITY_METHODS
from .similarity import similarity
from .solver import SolverConfig
from .topology import Topology, topology

__all__ = [
    "PCA", "Continuation", "Dynamics", "FixedPoints", "SolverConfig", "Topology", "check_map", "continuation",
    "count_unstable", "dynamics_of", "eigen", "find", "find_slow_points", "jacobians", "outlier_mask",
    "plot_eigenvalues", "plot_fixed_points", "sample_starts", "state_trajectories", "summarize", "surrogate_for",
    "topology", "unique_lowest_q",
]
__all__ += ["SIMILARITY_METHODS", "compare_topology", "similarity", "topology_summary"]
