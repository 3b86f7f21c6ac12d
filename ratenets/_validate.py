"""Range checks for the config dataclasses: each failure is one ``ValueError`` line that names the field,
the bad value and what is allowed (the config loader prefixes the key, ``config key rate.model: ...``)."""

from __future__ import annotations

import math
import numbers
import operator


def integer(name: str, value, low: int, high: int) -> None:
    """``value`` is an integer in ``[low, high]``."""
    try:
        ok = not isinstance(value, bool) and low <= operator.index(value) <= high
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def real(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    low_name: str | None = None,
    high_name: str | None = None,
) -> None:
    """``value`` is a finite number within the bounds given (closed unless ``open_*``); ``*_name`` names a bound
    that is another field (``dt_ms must be in (0, tau_min_ms = 20.0], got 25.0``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and (value >= high if open_high else value > high)
    if too_low or too_high:
        lo = None if low is None else (f"{low_name} = {low}" if low_name else str(low))
        hi = None if high is None else (f"{high_name} = {high}" if high_name else str(high))
        if lo is not None and hi is not None:
            allowed = f"in {'(' if open_low else '['}{lo}, {hi}{')' if open_high else ']'}"
        elif lo is not None:
            allowed = f"{'>' if open_low else '>='} {lo}"
        else:
            allowed = f"{'<' if open_high else '<='} {hi}"
        raise ValueError(f"{name} must be {allowed}, got {value}")


def boolean(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(sorted(allowed))}, got {value!r}")
