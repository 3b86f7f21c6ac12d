"""Run configuration: YAML read with ``yaml.safe_load`` into one dataclass per component, checked on
load. An unknown key, a wrong type or an out-of-range value raises ``ConfigError`` with one line that
names the key, the bad value and what is allowed, before any work is done."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import tasks
from ratenets import RateRNNConfig, TrainConfig
from spiking import LIFParams, LSNNConfig


class ConfigError(ValueError):
    """A config that cannot be run; the message is one line for the user."""


@dataclass
class TaskSection:
    name: str = "flipflop"
    params: dict = field(default_factory=dict)


@dataclass
class RateSection:
    """The rate network (``model``; its input/output widths and dt come from the task) and its training."""

    model: RateRNNConfig = field(
        default_factory=lambda: RateRNNConfig(n_units=200), metadata={"derived": ("n_inputs", "n_outputs", "dt_ms")}
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_trials: int = 1000

    def check(self):
        if self.eval_trials < 1:
            raise ValueError(f"eval_trials must be >= 1, got {self.eval_trials}")


@dataclass
class TransferSection:
    """Rate→LIF transfer (Kim et al. 2019): the scaling-factor grid, trials per factor in the search,
    fresh held-out trials to score the chosen factor on, and the LIF parameters. ``keep_readout_bias``
    keeps the rate readout's bias in the LIF output (the paper drops it; sigmoid networks whose outputs
    must swing to -1 rely on it)."""

    scales: list[float] = field(default_factory=lambda: [float(s) for s in range(20, 80, 5)])
    n_trials: int = 100
    eval_trials: int = 200
    raster_trials: int = 2
    keep_readout_bias: bool = False
    lif: LIFParams = field(default_factory=LIFParams)

    def check(self):
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be a non-empty list of factors > 0, got {self.scales}")
        if self.n_trials < 1 or self.eval_trials < 1 or self.raster_trials < 1:
            raise ValueError("n_trials, eval_trials and raster_trials must be >= 1")


@dataclass
class LSNNSection:
    """An LSNN of LIF and ALIF units (Bellec et al. 2018) trained on the task with surrogate gradients."""

    model: LSNNConfig = field(default_factory=LSNNConfig, metadata={"derived": ("n_inputs", "n_outputs", "dt_ms")})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(n_steps=1500, lr=0.005))
    eval_trials: int = 1000

    def check(self):
        if self.eval_trials < 1:
            raise ValueError(f"eval_trials must be >= 1, got {self.eval_trials}")


@dataclass
class FixedPointsSection:
    """Fixed points of every model of the run, at zero input, started from held-out trajectories
    (Sussillo & Barak 2013; Golub & Sussillo 2018 defaults)."""

    n_starts: int = 1024
    # Starts are held-out states plus Gaussian noise of this many times the trajectories' standard deviation, so
    # one setting fits sigmoid rates, tanh states and filtered spike trains alike (fixedpoints.find's own
    # ``noise`` is absolute, as in Golub & Sussillo's finder). Small on purpose: the flip-flop rate net gives the
    # same 27 points from 0.01 to 0.2, while the LSNN surrogate converges only from starts near its own states
    # (256 starts: 8 stable points at 0.01, 2 at 0.05, none at 0.2).
    noise: float = 0.01
    tol_q: float = 1e-12
    tol_unique: float = 1e-3

    def check(self):
        if self.n_starts < 1 or self.noise < 0 or not self.tol_q > 0 or self.tol_unique < 0:
            raise ValueError("need n_starts >= 1, noise >= 0, tol_q > 0 and tol_unique >= 0")


STAGE_NAMES = ("rate", "transfer", "lsnn", "fixedpoints")


@dataclass
class RunConfig:
    name: str = "flipflop"
    seed: int = 0
    device: str = "auto"
    stages: list[str] = field(default_factory=lambda: list(STAGE_NAMES))
    task: TaskSection = field(default_factory=TaskSection)
    rate: RateSection = field(default_factory=RateSection)
    transfer: TransferSection = field(default_factory=TransferSection)
    lsnn: LSNNSection = field(default_factory=LSNNSection)
    fixedpoints: FixedPointsSection = field(default_factory=FixedPointsSection)

    def check(self):
        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for s in self.stages:
            if s not in STAGE_NAMES:
                raise ValueError(f"stages: unknown stage {s!r}; allowed: {', '.join(STAGE_NAMES)}")
        for section, model_cfg in (("rate", self.rate_model_config), ("lsnn", self.lsnn_model_config)):
            try:
                model_cfg().check()
            except ValueError as e:
                raise ConfigError(f"config key {section}.model: {e}") from None

    def rate_model_config(self) -> RateRNNConfig:
        """The rate model's settings with the task's input/output widths and time step filled in."""
        task = self.make_task()
        return dataclasses.replace(
            self.rate.model, n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms
        )

    def lsnn_model_config(self) -> LSNNConfig:
        """The LSNN's settings with the task's input/output widths and time step filled in."""
        task = self.make_task()
        return dataclasses.replace(
            self.lsnn.model, n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms
        )

    def make_task(self) -> tasks.Task:
        if self.task.name not in tasks.names():
            known = ", ".join(tasks.names())
            raise ConfigError(f"config key task.name: unknown task {self.task.name!r}; known: {known}")
        try:
            return tasks.make(self.task.name, **self.task.params)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"config key task.params: {e}") from None


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}


def _coerce(value, hint, key: str, derived: tuple = ()):
    """Check ``value`` against the annotation ``hint``; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _coerce(value, opt, key, derived)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint) or (typing.Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key, derived)
    if hint is typing.Any:
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:
        raise TypeError(f"config loader cannot check type {hint!r} at {key}")
    if not ok:
        raise ConfigError(f"config key {key} must be {_TYPE_NAMES[hint]}, got {value!r} ({type(value).__name__})")
    return float(value) if hint is float else value


def from_dict(cls, data, key: str = "", derived: tuple = ()):
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges. Keys in ``derived``
    are filled in by the runner (from the task) and may not be set by hand."""
    where = key or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"config key {where} must be a mapping of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields_ = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        sub = f"{key}.{name}" if key else str(name)
        if name not in fields_ or name in derived:
            reason = "is set from the task" if name in derived else "is unknown"
            allowed = ", ".join(n for n in fields_ if n not in derived)
            raise ConfigError(f"config key {sub} {reason}; allowed keys here: {allowed}")
        kwargs[name] = _coerce(value, hints[name], sub, fields_[name].metadata.get("derived", ()))
    # Sections left out keep their defaults, but those defaults are checked too. A section with keys
    # filled in from the task is checked by its parent once those keys are known.
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None and not derived:
        try:
            check()
        except ValueError as e:
            raise ConfigError(f"config key {key}: {e}" if key else f"config: {e}") from None
    return obj


def with_overrides(cfg: RunConfig, **overrides) -> RunConfig:
    """A copy of ``cfg`` with top-level keys replaced, validated like a loaded config."""
    return from_dict(RunConfig, {**to_dict(cfg), **overrides})


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; every failure is a one-line ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    return from_dict(RunConfig, data)  # RunConfig.check builds the task: checked now, not after training


def to_dict(cfg, derived: tuple = ()) -> dict:
    """The config as plain data that ``from_dict`` reads back (keys filled in from the task left out)."""
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.init or f.name in derived:
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value, f.metadata.get("derived", ()))
        out[f.name] = value
    return out


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
