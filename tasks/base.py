"""The task contract: whole batches as tensors, a published score, a registry.

A task is a small object with a time step ``dt_ms``, input/output widths, and two methods:

* ``sample(batch_size, generator) -> TaskBatch`` builds every trial of a batch with tensor
  operations (no Python loop over trials), drawing all randomness from ``generator``;
* ``score(outputs, batch) -> float`` in [0, 1] applies the task's published criterion.

``loss_kind`` says how the shared training loop fits it: ``"mse"`` (masked squared error) or
``"xent"`` (cross-entropy on the masked steps, targets one-hot).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch


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
        """The task to score held-out trials on (a test split where the task has one)."""
        return self

    def check(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range parameter."""
        if not self.dt_ms > 0:
            raise ValueError(f"dt_ms must be > 0, got {self.dt_ms}")

    def __post_init__(self):
        self.check()


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
