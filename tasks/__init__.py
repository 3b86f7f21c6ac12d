"""Task library: every task builds whole batches as tensors and scores outputs with its published
criterion. ``make(name, **params)`` builds one; ``names()`` lists them."""

from . import ctd, digits, flipflop, kim, signals, timing  # noqa: F401  (registers the tasks)
from .base import Task, TaskBatch, make, names, register

__all__ = ["Task", "TaskBatch", "make", "names", "register"]
