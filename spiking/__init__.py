"""Spiking networks: the LIF network of Kim et al. 2019 for transferred rate networks (``lif``: parameters,
state, pure step; ``simulate``: B trials × S networks in one tensor program; ``lif_network``: the registered
model around both, with a per-step API), ALIF/LSNN neurons with NIR export/import, firing rates (``rates``) and
figures (``plots``). The Brian2 cross-check is ``transfer.xcheck``.

Time steps have one name each: ``dt_ms`` is a model's step, the step of its inputs, outputs and ``Rollout`` (the
task's step); ``lif_dt_ms`` (``LIFParams``) is the LIF simulator's integration step inside it."""

from .lif import LIFParams, LIFState, SynapseConstants, initial_state, lif_step, synapse_constants
from .lif_network import LIFNetwork, LIFNetworkConfig
from .plots import plot_output_vs_target, plot_raster, plot_rate_histogram
from .rates import mean_rate_hz, unit_rates_hz
from .simulate import LIFResult, simulate, spikes_from_events, warmup_steps

__all__ = [
    "LIFNetwork",
    "LIFNetworkConfig",
    "LIFParams",
    "LIFResult",
    "LIFState",
    "SynapseConstants",
    "initial_state",
    "lif_step",
    "mean_rate_hz",
    "plot_output_vs_target",
    "plot_raster",
    "plot_rate_histogram",
    "simulate",
    "spikes_from_events",
    "synapse_constants",
    "unit_rates_hz",
    "warmup_steps",
]

# LSNN (issue 5): ALIF neurons on snntorch's base, LIF/ALIF networks, NIR export/import, figures.
from .alif import ALIF, ALIFParameters, ALIFState, alif_step, bellec_pseudo_derivative, spike_function  # noqa: E402
from .lsnn import LSNN, LSNNConfig  # noqa: E402
from .nir_io import (  # noqa: E402
    NIRApproximationWarning,
    export_lif_network,
    export_lsnn,
    import_lif_network,
    import_lsnn,
    read_graph,
    write_graph,
)

__all__ += [
    "ALIF",
    "ALIFParameters",
    "ALIFState",
    "LSNN",
    "LSNNConfig",
    "NIRApproximationWarning",
    "alif_step",
    "bellec_pseudo_derivative",
    "export_lif_network",
    "export_lsnn",
    "import_lif_network",
    "import_lsnn",
    "read_graph",
    "spike_function",
    "write_graph",
]
