"""Rate→LIF transfer of Kim et al. 2019: ``rate_to_lif`` (weight mapping), ``search_scale`` (every scaling
factor × trial in one batched LIF simulation), ``simulate_trials`` (a few trials for figures: the scan in
``transfer.plots``, rasters and rate histograms in ``spiking.plots``), ``xcheck`` (the Brian2 cross-check, needs
the ``xcheck`` extra); ``run.py`` is the pipeline entry."""

from .mapping import check_rate_net, check_scale_factor, dt_ms_of, lif_weights, rate_to_lif
from .search import DEFAULT_SCALES, ScaleSearchResult, TransferTrials, search_scale, simulate_trials

__all__ = [
    "DEFAULT_SCALES",
    "ScaleSearchResult",
    "TransferTrials",
    "check_rate_net",
    "check_scale_factor",
    "lif_weights",
    "dt_ms_of",
    "rate_to_lif",
    "search_scale",
    "simulate_trials",
]
