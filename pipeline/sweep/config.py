"""Sweep configuration: a base run config plus axes, expanded into one ordinary run config per network.

A sweep file (YAML, read with ``yaml.safe_load``)::

    name: universality            # the sweep's folder under --out
    base: flipflop.yaml           # a run config file (relative to this file) or an inline mapping
    axes:
      architectures: [rate_lif, lsnn, vanilla, gru, lstm, ugrnn]
      seeds: [0, 1, 2, 3, 4]
      sizes: []                   # units per network; empty: the base config's
      activations: []             # rate networks only; empty: the base config's
      tasks: []                   # task names or {name, params}; empty: the base config's
    retries: 1                    # a failed network is run again this often, then recorded as failed
    processes: 0                  # local executor: parallel networks (0: as many as cores)
    aggregate: {trials: 64, seed: 0, ...}

Every network's config is built and validated (``pipeline.config``) before any work; a value that is not a
valid config value stops the sweep with one line naming the network it would have built.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import RunConfig, from_dict, load_config, to_dict
from ..errors import ConfigError

#: architecture -> (the stages that make it, the model whose score and states stand for the network)
ARCHITECTURES = {
    "rate_lif": (("rate", "transfer"), "lif"),
    "lsnn": (("lsnn",), "lsnn"),
    "vanilla": (("baselines",), "vanilla"),
    "gru": (("baselines",), "gru"),
    "lstm": (("baselines",), "lstm"),
    "ugrnn": (("baselines",), "ugrnn"),
}
#: the model whose fixed points stand for the network (a transferred LIF network is analysed through its rate map)
FIXED_POINT_MODEL = {"rate_lif": "rate"}
MAX_NETWORKS = 100_000


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"sweep config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"sweep config file {path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"sweep config file {path} is not valid YAML"
                          + (f" at line {mark.line + 1}" if mark else "")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep config file {path} must hold a mapping of settings")
    return data


def is_sweep_file(path) -> bool:
    """Whether a YAML file is a sweep config (it has ``axes``) rather than a run config."""
    try:
        data = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "axes" in data


@dataclass(frozen=True)
class Axes:
    architectures: tuple[str, ...] = ("gru",)
    seeds: tuple[int, ...] = (0,)
    sizes: tuple[int, ...] = ()
    activations: tuple[str, ...] = ()
    tasks: tuple = ()  # names or {"name": ..., "params": {...}}

    def __post_init__(self):
        if not self.architectures or not self.seeds:
            raise ConfigError("sweep key axes: architectures and seeds each need at least one value")
        for a in self.architectures:
            if a not in ARCHITECTURES:
                raise ConfigError(f"sweep key axes.architectures: unknown architecture {a!r}; "
                                  f"known: {', '.join(ARCHITECTURES)}")
        for name in ("architectures", "seeds", "sizes", "activations"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"sweep key axes.{name} lists a value twice: {list(values)}")
        for key, values, kind in (("seeds", self.seeds, int), ("sizes", self.sizes, int),
                                  ("activations", self.activations, str)):
            for v in values:
                if not isinstance(v, kind) or isinstance(v, bool):
                    what = "an integer" if kind is int else "a string"
                    raise ConfigError(f"sweep key axes.{key}: {v!r} is not {what}")
        for t in self.tasks:
            ok = isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("name"), str)
                                        and set(t) <= {"name", "params"} and isinstance(t.get("params", {}), dict))
            if not ok:
                raise ConfigError(f"sweep key axes.tasks: {t!r} is neither a task name nor {{name, params}}")


@dataclass(frozen=True)
class AggregateSection:
    """``trials`` held-out trials (drawn from stream ``seed``, the same for every network) whose states are
    compared; ``max_units`` caps the units kept per network for SVCCA (most variable first); ``svcca_keep``
    the fraction of variance SVCCA keeps before CCA; topology settings go to ``fixedpoints.topology``."""

    trials: int = 64
    seed: int = 0
    svcca_keep: float = 0.99
    topology_steps: int = 2000
    topology_epsilon: float = 0.01
    match_tol: float = 0.05

    def __post_init__(self):
        if not 2 <= self.trials <= 100_000:
            raise ConfigError(f"sweep key aggregate.trials must be in [2, 100000], got {self.trials}")
        if not 0 < self.svcca_keep <= 1:
            raise ConfigError(f"sweep key aggregate.svcca_keep must be in (0, 1], got {self.svcca_keep}")
        if not 1 <= self.topology_steps <= 1_000_000:
            raise ConfigError(f"sweep key aggregate.topology_steps must be in [1, 1e6], got {self.topology_steps}")
        for k in ("topology_epsilon", "match_tol"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"sweep key aggregate.{k} must be a finite number > 0, got {v}")


@dataclass(frozen=True)
class Network:
    """One network of a sweep: its run folder name, its place on the axes and its validated run config."""

    name: str
    architecture: str
    seed: int
    size: int | None
    activation: str | None
    task: str
    config: RunConfig

    @property
    def model(self) -> str:
        return ARCHITECTURES[self.architecture][1]

    @property
    def fixed_point_model(self) -> str:
        return FIXED_POINT_MODEL.get(self.architecture, self.model)

    def axes(self) -> dict:
        return {"architecture": self.architecture, "seed": self.seed, "size": self.size,
                "activation": self.activation, "task": self.task}


@dataclass(frozen=True)
class SweepConfig:
    name: str
    base: dict  # the base run config as plain data
    axes: Axes
    retries: int = 1
    processes: int = 0
    fixed_points: bool = True
    aggregate: AggregateSection = field(default_factory=AggregateSection)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}", self.name or ""):  # a run name's rule
            raise ConfigError(f"sweep key name must be a plain folder name (letters, digits, _.+-), got {self.name!r}")
        if not 0 <= self.retries <= 100:
            raise ConfigError(f"sweep key retries must be in [0, 100], got {self.retries}")
        if not 0 <= self.processes <= 1024:
            raise ConfigError(f"sweep key processes must be in [0, 1024] (0: as many as cores), got {self.processes}")

    def networks(self) -> list[Network]:
        """Every network of the sweep, each config built and validated; the first invalid one stops it all."""
        a = self.axes
        n = len(a.architectures) * len(a.seeds) * max(1, len(a.sizes)) * max(1, len(a.activations)) \
            * max(1, len(a.tasks))
        if n > MAX_NETWORKS:
            raise ConfigError(f"the sweep would build {n} networks; at most {MAX_NETWORKS}")
        out, seen = [], set()
        grid = itertools.product(a.tasks or (None,), a.sizes or (None,), a.activations or (None,),
                                 a.seeds, a.architectures)  # seed-major: a partial sweep covers every architecture
        for task, size, activation, seed, arch in grid:
            net = build_network(self, arch, seed, size, activation, task)
            if net.name in seen:
                raise ConfigError(f"two networks of the sweep would share the folder {net.name}")
            seen.add(net.name)
            out.append(net)
        return out


def _task_name(task) -> str:
    return task if isinstance(task, str) else task["name"]


def network_name(arch: str, seed: int, size, activation, task) -> str:
    parts = [arch]
    if task is not None:
        parts.append(_task_name(task))
    if size is not None:
        parts.append(f"n{size}")
    if activation is not None:
        parts.append(activation)
    parts.append(f"s{seed}")
    return "-".join(parts)


def _set_size(d: dict, arch: str, size: int) -> None:
    if arch == "rate_lif":
        d.setdefault("rate", {}).setdefault("model", {})["n_units"] = size
    elif arch == "lsnn":
        model = d.setdefault("lsnn", {}).setdefault("model", {})
        model["n_lif"], model["n_alif"] = size - size // 2, size // 2  # half adaptive, as Bellec et al.
    else:
        d.setdefault("baselines", {}).setdefault(arch, {}).setdefault("model", {})["n_units"] = size


def build_network(sweep: SweepConfig, arch: str, seed: int, size=None, activation=None, task=None) -> Network:
    """The run config of one network: the base with the network's stages, seed and axis values."""
    name = network_name(arch, seed, size, activation, task)
    d = copy.deepcopy(sweep.base)
    d["name"] = name
    d["seed"] = seed
    stages = list(ARCHITECTURES[arch][0]) + (["fixedpoints"] if sweep.fixed_points else [])
    d["stages"] = stages
    if arch in ("vanilla", "gru", "lstm", "ugrnn"):
        d.setdefault("baselines", {})["architectures"] = [arch]
    try:
        if task is not None:
            d["task"] = {"name": task, "params": {}} if isinstance(task, str) else \
                {"name": task["name"], "params": dict(task.get("params", {}))}
        if size is not None:
            if not 1 <= size <= 100_000:
                raise ConfigError(f"size must be in [1, 100000], got {size}")
            _set_size(d, arch, size)
        if activation is not None:
            if arch != "rate_lif":
                raise ConfigError(f"architecture {arch} has no activation setting (only rate_lif's rate network does)")
            d.setdefault("rate", {}).setdefault("model", {})["activation"] = activation
        cfg = from_dict(RunConfig, d)
    except ConfigError as e:
        raise ConfigError(f"network {name} ({_describe(arch, seed, size, activation, task)}): {e}") from None
    return Network(name, arch, seed, size, activation, cfg.task.name, cfg)


def _describe(arch, seed, size, activation, task) -> str:
    parts = [f"architecture {arch}", f"seed {seed}"]
    if size is not None:
        parts.append(f"size {size}")
    if activation is not None:
        parts.append(f"activation {activation!r}")
    if task is not None:
        parts.append(f"task {_task_name(task)!r}")
    return ", ".join(parts)


_TOP = ("name", "base", "axes", "retries", "processes", "fixed_points", "aggregate")


def _check_keys(data: dict, allowed, where: str) -> None:
    for k in data:
        if k not in allowed:
            raise ConfigError(f"sweep key {where}{k} is unknown; allowed keys here: {', '.join(allowed)}")


def sweep_from_dict(data: dict, folder: Path = Path(".")) -> SweepConfig:
    """Build and validate a sweep config from plain data; ``folder`` resolves a ``base`` given as a file."""
    if not isinstance(data, dict):
        raise ConfigError("a sweep config must be a mapping of settings")
    _check_keys(data, _TOP, "")
    for k in ("name", "base", "axes"):
        if k not in data:
            raise ConfigError(f"sweep key {k} is missing")
    if not isinstance(data["name"], str):
        raise ConfigError(f"sweep key name must be a string, got {data['name']!r}")
    base = data["base"]
    if isinstance(base, str):
        base = to_dict(load_config(Path(folder) / base))
    elif isinstance(base, dict):
        base = to_dict(from_dict(RunConfig, base))  # validated once, alone, with every default filled in
    else:
        raise ConfigError(f"sweep key base must be a run config file or mapping, got {base!r}")
    axes = data["axes"]
    if not isinstance(axes, dict):
        raise ConfigError(f"sweep key axes must be a mapping, got {axes!r}")
    allowed = [f.name for f in dataclasses.fields(Axes)]
    _check_keys(axes, allowed, "axes.")
    axes_kw = {}
    for k, v in axes.items():
        if v is None:
            v = []
        if not isinstance(v, list):
            v = [v]
        axes_kw[k] = tuple(v)
    agg = data.get("aggregate") or {}
    if not isinstance(agg, dict):
        raise ConfigError(f"sweep key aggregate must be a mapping, got {agg!r}")
    _check_keys(agg, [f.name for f in dataclasses.fields(AggregateSection)], "aggregate.")
    agg_kw = {}
    for k, v in agg.items():
        want = {f.name: f.type for f in dataclasses.fields(AggregateSection)}[k]
        if want == "int" and (not isinstance(v, int) or isinstance(v, bool)) or \
                want == "float" and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            raise ConfigError(f"sweep key aggregate.{k} must be {'an integer' if want == 'int' else 'a number'}, "
                              f"got {v!r}")
        agg_kw[k] = float(v) if want == "float" else v
    for k in ("retries", "processes"):
        if k in data and (not isinstance(data[k], int) or isinstance(data[k], bool)):
            raise ConfigError(f"sweep key {k} must be an integer, got {data[k]!r}")
    if "fixed_points" in data and not isinstance(data["fixed_points"], bool):
        raise ConfigError(f"sweep key fixed_points must be true or false, got {data['fixed_points']!r}")
    return SweepConfig(name=data["name"], base=base, axes=Axes(**axes_kw), retries=data.get("retries", 1),
                       processes=data.get("processes", 0), fixed_points=data.get("fixed_points", True),
                       aggregate=AggregateSection(**agg_kw))


def load_sweep(path) -> SweepConfig:
    path = Path(path)
    return sweep_from_dict(_read_yaml(path), path.parent)


def sweep_to_dict(sweep: SweepConfig) -> dict:
    return {"name": sweep.name, "base": sweep.base, "axes": {k: list(v) for k, v in dataclasses.asdict(sweep.axes)
                                                             .items()},
            "retries": sweep.retries, "processes": sweep.processes, "fixed_points": sweep.fixed_points,
            "aggregate": dataclasses.asdict(sweep.aggregate)}
