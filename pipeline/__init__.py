"""The runner: a run's config, its stages (one module each in ``pipeline/stages/``), the run directory and
its one writer, the report. ``run_pipeline(cfg)`` runs a config; ``ratespike CONFIG`` from the shell."""

from .config import ConfigError, RunConfig, dump_config, from_dict, load_config, to_dict, with_overrides
from .context import RunContext, RunError
from .registry import STAGES, Stage, register
from .runner import run_pipeline

__all__ = [
    "STAGES",
    "ConfigError",
    "RunConfig",
    "RunContext",
    "RunError",
    "Stage",
    "dump_config",
    "from_dict",
    "load_config",
    "register",
    "run_pipeline",
    "to_dict",
    "with_overrides",
]
