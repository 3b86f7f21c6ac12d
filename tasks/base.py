"""The task contract: whole batches as tensors, a published score, a registry.

A task is a small object with a time step ``dt_ms``, input/output widths, and two methods:

* ``sample(batch_size, generator) -> TaskBatch`` builds every trial of a batch with tensor
  operations (no Python loop over trials), drawing all randomness from ``generator``;
* ``score(outputs, batch) -> float`` in [0, 1] applies the task's published criterion.

``loss_kind`` says how the shared training loop fits it: ``"mse"`` (masked squared error) or
``"xent"`` (cross-entropy on the masked steps, targets one-hot).

Parameters are checked when a task is built, so a bad one fails at ``make`` with one line naming it,
its value and what is allowed, not later inside ``sample``. Types follow the field annotations: an
``int`` takes integers only (not ``True``, not ``2.5``), a ``float`` takes any finite real number (not
a bool, nan or inf), a ``str`` a string, a ``bool`` a bool. Ranges are each task's ``check()``; the
bounds shared by all tasks are ``MAX_STEPS`` and ``MAX_COUNT``.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar, NamedTuple

import torch

# Upper bounds on sizes, so that a typo cannot ask for terabytes: a batch holds B·T·(I + 2·O) floats.
MAX_STEPS = 100_000  # steps in a trial (and any window or delay inside one)
MAX_COUNT = 1024  # channels, bits and other counts of a trial (e.g. sine frequencies)


class TaskBatch(NamedTuple):
    """One batch of trials: ``inputs [B,T,I]``, ``targets [B,T,O]``, ``mask [B,T,O]`` (1 where scored)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    meta: dict

    def to(self, device) -> TaskBatch:
        meta = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.meta.items()}
        return TaskBatch(self.inputs.to(device), self.targets.to(device), self.mask.to(device), meta)


@dataclass
class Task(abc.ABC):
    """Base class; subclasses are dataclasses whose fields are the task's parameters and define the five
    abstract members below (a subclass that misses one cannot be instantiated)."""

    dt_ms: float = 5.0
    name: str = field(default="", init=False, repr=False)
    loss_kind: str = field(default="mse", init=False, repr=False)
    # float parameters that may be nan or inf; every other float parameter must be finite
    nonfinite_ok: ClassVar[tuple[str, ...]] = ()

    @property
    @abc.abstractmethod
    def n_inputs(self) -> int:
        """Input channels ``I``."""

    @property
    @abc.abstractmethod
    def n_outputs(self) -> int:
        """Output channels ``O``."""

    @property
    @abc.abstractmethod
    def n_steps(self) -> int:
        """Steps of ``dt_ms`` per trial ``T``."""

    @abc.abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> TaskBatch:
        """A whole batch of trials, drawn from ``generator``."""

    @abc.abstractmethod
    def score(self, outputs: torch.Tensor, batch: TaskBatch) -> float:
        """The task's published criterion on ``outputs [B,T,O]``."""

    def held_out(self) -> Task:
        """The task to score held-out trials on (a test split where the task has one). Only final scoring
        touches it; nothing chosen during training (early stop, model selection) may look at it."""
        return self

    def validation(self) -> Task:
        """The task that training validates (and early-stops) on. A synthetic task returns itself: its
        validation trials come from their own random stream (``ratenets.seeds.VALIDATION``), drawn
        independently of the training and held-out trials. A task with a fixed data set returns a split carved out of
        its training data, disjoint from both the rest of the training data and ``held_out()``."""
        return self

    def check(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range parameter. Runs after the type checks, so
        a subclass may compare its parameters freely. ``dt_ms``: finite, > 0."""
        self._require("dt_ms", self.dt_ms > 0, "> 0")

    def __post_init__(self):
        check_types(self)
        self.check()
        # A safety net for checks a task misses: sizes a batch is allocated from.
        for what, value, high in (
            ("trial length n_steps", self.n_steps, MAX_STEPS),
            ("input width n_inputs", self.n_inputs, MAX_COUNT),
            ("output width n_outputs", self.n_outputs, MAX_COUNT),
        ):
            if not 1 <= value <= high:
                raise ValueError(f"the parameters give a {what} of {value}; it must be in [1, {high}]")

    def _require(self, name: str, ok: bool, allowed: str) -> None:
        """Raise the one-line error for parameter ``name`` unless ``ok``; ``allowed`` says what is allowed."""
        if not ok:
            raise ValueError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

    def _require_in(self, name: str, low, high, bounds: str = "") -> None:
        """Parameter ``name`` must lie in the closed range [low, high]; ``bounds`` says how they are derived
        from other parameters, e.g. ``"[1, n_steps_total]"``."""
        allowed = f"in {bounds} = [{low}, {high}]" if bounds else f"in [{low}, {high}]"
        self._require(name, low <= getattr(self, name) <= high, allowed)


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@functools.cache
def _parameter_types(cls: type[Task]) -> dict[str, tuple[type, bool]]:
    """``{field: (type, None allowed)}`` for the constructor's fields, from their annotations."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        if not f.init:
            continue
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else None
        if hint not in _KINDS:  # a new task must use a type checked here, or extend the check
            raise TypeError(f"{cls.__name__}.{f.name}: cannot check parameters of type {hints[f.name]!r}")
        out[f.name] = (hint, optional)
    return out


def check_types(task: Task) -> None:
    """Raise ``ValueError`` for the first parameter whose value does not fit its annotation."""
    for name, (kind, optional) in _parameter_types(type(task)).items():
        value = getattr(task, name)
        if value is None and optional:
            continue
        # bool is an int subclass, so True would pass as 1 without the explicit exclusion
        ok = {
            int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
            float: isinstance(value, numbers.Real) and not isinstance(value, bool),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
        }[kind]
        if not ok:
            allowed = _KINDS[kind] + (" or None" if optional else "")
            hint = ""
            if kind is float and isinstance(value, str) and _is_finite_number(value):
                hint = "; write numbers unquoted (YAML reads 1e-3 as text, 1.0e-3 as a number)"
            raise ValueError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__}){hint}")
        if kind is float and name not in task.nonfinite_ok and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


_REGISTRY: dict[str, type[Task]] = {}


def register(name: str) -> Callable[[type[Task]], type[Task]]:
    def wrap(cls: type[Task]) -> type[Task]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, **params) -> Task:
    """Build a registered task; an unknown name or parameter raises ``ValueError`` saying what is allowed."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    cls = _REGISTRY[name]
    allowed = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r} has no parameter {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return cls(**params)


def uniform_int(low: int, high: int, shape, generator) -> torch.Tensor:
    """Integers in [low, high] inclusive."""
    return torch.randint(low, high + 1, shape, generator=generator)


def signs(shape, generator) -> torch.Tensor:
    """Random ±1 floats."""
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


def window(n_steps: int, start: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, T]``: true where ``start[b] <= t < stop[b]``."""
    t = torch.arange(n_steps)
    return (t[None, :] >= start[:, None]) & (t[None, :] < stop[:, None])


def crossing_correct(outputs: torch.Tensor, sign: torch.Tensor, t0: int, threshold: float) -> torch.Tensor:
    """Kim et al.'s rule for ±1 targets: the output after ``t0`` crosses ``threshold`` on the right side.

    ``outputs [B,T]``; ``sign [B]`` in {-1, +1}. Correct if ``max(sign·o[t0:]) > threshold``.
    """
    return ((outputs[:, t0:] * sign[:, None]).amax(dim=1) > threshold)


def r2_score(outputs: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of the targets' power explained on masked entries, ``1 - Σ(o-z)² / Σz²``, clipped to [0, 1]."""
    m = batch.mask > 0
    err = ((outputs[m] - batch.targets[m]) ** 2).sum()
    power = (batch.targets[m] ** 2).sum().clamp_min(1e-12)
    return float((1 - err / power).clamp(0, 1))
