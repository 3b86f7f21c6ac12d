"""Spiking networks: the LIF network of Kim et al. 2019 for transferred rate networks (``lif``: parameters,
state, pure step; ``simulate``: B trials × S networks in one tensor program; ``lif_network``: the registered
model around both), and ALIF/LSNN neurons with NIR export/import. The Brian2 cross-check is ``transfer.xcheck``."""

from .lif import LIFParams, LIFState, SynapseConstants, initial_state, lif_step, synapse_constants
from .lif_network import LIFNetwork, LIFNetworkConfig
from .simulate import LIFResult, simulate, warmup_steps

__all__ = [
    "LIFNetwork",
    "LIFNetworkConfig",
    "LIFParams",
    "LIFResult",
    "LIFState",
    "SynapseConstants",
    "initial_state",
    "lif_step",
    "simulate",
    "synapse_constants",
    "warmup_steps",
]

# LSNN (issue 5): ALIF neurons on snntorch's base, LIF/ALIF networks, NIR export/import, figures.
from .alif import ALIF, ALIFParameters, ALIFState, alif_step, bellec_pseudo_derivative, spike_function  # noqa: E402
from .lsnn import LSNN, LSNNConfig, mean_rate_hz, unit_rates_hz  # noqa: E402
from .lsnn_plots import plot_output_vs_target, plot_raster, plot_rate_histogram  # noqa: E402
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
    "mean_rate_hz",
    "plot_output_vs_target",
    "plot_raster",
    "plot_rate_histogram",
    "read_graph",
    "spike_function",
    "unit_rates_hz",
    "write_graph",
]
