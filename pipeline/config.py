"""Run configuration: YAML read with ``yaml.safe_load`` into frozen dataclasses, validated once, when
they are built. An unknown key, a wrong type or an out-of-range value raises ``ConfigError`` with one
line naming the key, the bad value and what is allowed, before any work is done.

The top level holds ``name``, ``seed``, ``device``, ``stages`` and ``task``; every other key is the
config section of one registered stage (``pipeline.registry``), so a new stage brings its own section.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import tasks

from . import stages as _stages  # noqa: F401  (every stage module registers itself and its section)
from .errors import ConfigError
from .registry import STAGES, ordered

MAX_SEED = 2**32 - 1
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class TaskSection:
    name: str = "flipflop"
    params: dict = field(default_factory=dict)


def _label(key: str, e: Exception) -> ConfigError:
    return e if isinstance(e, ConfigError) else ConfigError(f"config key {key}: {e}")


@dataclass(frozen=True)
class RunConfig:
    """The whole run: ``sections`` maps each registered stage with a config section to its settings
    (read as attributes too: ``cfg.rate``). ``stages`` left out means every registered stage."""

    name: str = "flipflop"
    seed: int = 0
    device: str = "auto"
    stages: tuple[str, ...] | None = None
    task: TaskSection = field(default_factory=TaskSection)
    sections: dict = field(default_factory=dict)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}", self.name or ""):
            raise ConfigError(f"config key name must be a plain folder name (letters, digits, _.+-), got {self.name!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"config key seed must be in [0, {MAX_SEED}], got {self.seed}")
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"config key device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        stages = tuple(s.name for s in ordered()) if self.stages is None else tuple(self.stages)
        if not stages:
            raise ConfigError(f"config key stages is empty; name at least one of: {', '.join(STAGES)}")
        for s in stages:
            if s not in STAGES:
                raise ConfigError(f"config key stages: unknown stage {s!r}; allowed: {', '.join(STAGES)}")
        object.__setattr__(self, "stages", tuple(st.name for st in ordered(stages)))  # run order, no repeats
        sections = dict(self.sections)
        for st in ordered():
            if st.section is not None and st.name not in sections:
                sections[st.name] = st.section()
        object.__setattr__(self, "sections", sections)
        task = self.make_task()
        for name, section in sections.items():
            check = getattr(section, "check_with_task", None)
            if check is not None:
                try:
                    check(task)
                except ValueError as e:
                    raise _label(name, e) from None

    def __getattr__(self, name):
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"RunConfig has no attribute or section {name!r}")

    def section(self, stage: str):
        return self.sections.get(stage)

    def make_task(self) -> tasks.Task:
        if self.task.name not in tasks.names():
            known = ", ".join(tasks.names())
            raise ConfigError(f"config key task.name: unknown task {self.task.name!r}; known: {known}")
        try:
            return tasks.make(self.task.name, **self.task.params)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"config key task.params: {e}") from None

    def resolved_task(self) -> dict:
        """The task's name and every parameter, defaults included (what a stage's results depend on)."""
        task = self.make_task()
        params = {f.name: getattr(task, f.name) for f in dataclasses.fields(task) if f.init}
        return {"name": self.task.name, **params}


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}


def _coerce(value, hint, key: str, derived: tuple = ()):
    """Check ``value`` against the annotation ``hint``. Ints are accepted for floats, and so is a string
    that YAML left unparsed but a person meant as a number (``1e-3``); non-finite numbers are not."""
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
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [typing.Any]
        items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key, derived)
    if hint is typing.Any:
        return value
    if hint is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
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
    if hint is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"config key {key} must be a finite number, got {value}")
    return value


def from_dict(cls, data, key: str = "", derived: tuple = ()):
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges. Keys in ``derived``
    are filled in by the runner (from the task) and may not be set by hand."""
    if cls is RunConfig:
        return _run_config_from_dict(data)
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
    if derived:
        return _template(cls, kwargs)
    try:
        return cls(**kwargs)  # frozen dataclasses check their ranges when built
    except ValueError as e:
        raise (_label(key, e) if key else ConfigError(f"config: {e}")) from None


def _template(cls, kwargs: dict):
    """A model config whose task-given keys are not known yet: built without its range checks, which run when
    the section fills those keys in (``dataclasses.replace`` constructs, and so validates, the real one)."""
    obj = cls.__new__(cls)
    for f in dataclasses.fields(cls):
        if f.name in kwargs:
            value = kwargs[f.name]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        else:
            value = f.default_factory()
        object.__setattr__(obj, f.name, value)
    return obj


def _run_config_from_dict(data) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"a run config must be a mapping of settings, got {type(data).__name__}")
    base = {f.name for f in dataclasses.fields(RunConfig) if f.name != "sections"}
    section_types = {st.name: st.section for st in ordered() if st.section is not None}
    top, sections = {}, {}
    for k, v in data.items():
        if k in section_types:
            sections[k] = _coerce(v, section_types[k], k)
        elif k in base:
            top[k] = v
        else:
            allowed = ", ".join([*sorted(base), *section_types])
            raise ConfigError(f"config key {k} is unknown; allowed keys here: {allowed}")
    hints = typing.get_type_hints(RunConfig)
    kwargs = {k: _coerce(v, hints[k], k) for k, v in top.items()}
    return RunConfig(**kwargs, sections=sections)


def with_overrides(cfg: RunConfig, **overrides) -> RunConfig:
    """A copy of ``cfg`` with top-level keys (or whole sections) replaced, validated like a loaded config."""
    return from_dict(RunConfig, {**to_dict(cfg), **overrides})


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; every failure is a one-line ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty; start from one in configs/ (configs/flipflop.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got a {type(data).__name__}")
    return from_dict(RunConfig, data)


def _plain(value):
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(cfg, derived: tuple = ()) -> dict:
    """The config as plain data that ``from_dict`` reads back (keys filled in from the task left out)."""
    if isinstance(cfg, RunConfig):
        out = {k: _plain(getattr(cfg, k)) for k in ("name", "seed", "device", "stages", "task")}
        for st in ordered():
            if st.name in cfg.sections:
                out[st.name] = to_dict(cfg.sections[st.name])
        return out
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.init or f.name in derived:
            continue
        value = getattr(cfg, f.name)
        nested = dataclasses.is_dataclass(value)
        out[f.name] = to_dict(value, f.metadata.get("derived", ())) if nested else _plain(value)
    return out


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
