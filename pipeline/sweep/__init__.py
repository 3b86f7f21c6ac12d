"""Sweeps over many networks: a base run config plus axes (architectures, seeds, sizes, activations, tasks),
each network an ordinary run folder under the sweep's folder, run by a local or a Ray executor, then compared
(SVCCA/CKA distances, MDS, fixed-point topology). ``ratespike sweep CONFIG`` from the shell."""

from .config import ARCHITECTURES, Network, SweepConfig, load_sweep, sweep_from_dict
from .driver import run_sweep
from .executors import InlineExecutor, LocalExecutor, RayExecutor, make_executor

__all__ = [
    "ARCHITECTURES", "InlineExecutor", "LocalExecutor", "Network", "RayExecutor", "SweepConfig", "load_sweep",
    "make_executor", "run_sweep", "sweep_from_dict",
]
