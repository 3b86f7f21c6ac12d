"""Signal tasks: tracking Ornstein–Uhlenbeck processes (seed 002) and sine generation
(Maheswaranathan et al. 2019)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import MAX_COUNT, MAX_STEPS, Task, TaskBatch, r2_score, register


def ou_paths(batch_size, n_steps, n_signals, tau_ms, sigma, dt_ms, generator):
    """Exact OU samples: ``x_{t+1} = a x_t + sigma·sqrt(1 - a²)·ξ`` with ``a = exp(-dt/τ)``, started from
    the stationary law N(0, sigma²). The transition is the process's exact one, not an Euler step."""
    a = math.exp(-dt_ms / tau_ms)
    xi = torch.randn(batch_size, n_steps, n_signals, generator=generator)
    xi[:, 1:] *= sigma * math.sqrt(1 - a * a)
    xi[:, 0] *= sigma
    # x_t = Σ_k a^{t-k} ξ_k, computed as a scaled cumulative sum (stable for the lengths used here).
    powers = a ** torch.arange(n_steps, dtype=torch.float64)
    scaled = (xi.double() / powers[None, :, None]).cumsum(dim=1)
    return (scaled * powers[None, :, None]).float()


@register("ou_tracking")
@dataclass
class OUTracking(Task):
    """Each input is an independent OU process (time constant ``tau_ms``, stationary std ``sigma``);
    each output must reproduce its input. Score: fraction of target power explained.

    Allowed: ``n_signals`` in [1, MAX_COUNT]; ``n_steps_total`` in [1, MAX_STEPS]; ``tau_ms``, ``sigma`` > 0;
    ``n_steps_total * dt_ms / tau_ms`` <= 600 (the sampler divides by exp(-that) in float64)."""

    n_signals: int = 1
    n_steps_total: int = 200
    tau_ms: float = 50.0
    sigma: float = 1.0

    n_inputs = property(lambda self: self.n_signals)
    n_outputs = property(lambda self: self.n_signals)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_signals", 1, MAX_COUNT)
        self._require_in("n_steps_total", 1, MAX_STEPS)
        self._require("tau_ms", self.tau_ms > 0, "> 0")
        self._require("sigma", self.sigma > 0, "> 0")
        span = self.n_steps_total * self.dt_ms / self.tau_ms
        if not span <= 600:
            raise ValueError(
                f"n_steps_total * dt_ms / tau_ms must be <= 600 (exact sampler range), "
                f"got {self.n_steps_total} * {self.dt_ms} / {self.tau_ms} = {span:g}"
            )

    def sample(self, batch_size, generator=None):
        x = ou_paths(batch_size, self.n_steps_total, self.n_signals, self.tau_ms, self.sigma, self.dt_ms, generator)
        return TaskBatch(x, x.clone(), torch.ones_like(x), {})

    def score(self, outputs, batch):
        return r2_score(outputs, batch)


@register("sine")
@dataclass
class Sine(Task):
    """A static input ``j/n_freqs + 0.25`` selects frequency ``freq_min + j·step`` (Hz); the output is
    ``sin(2π f t)`` from t = 0. Score: fraction of target power explained.

    Allowed: ``n_freqs`` in [1, MAX_COUNT]; ``n_steps_total`` in [1, MAX_STEPS];
    0 < ``freq_min_hz`` <= ``freq_max_hz`` < 500 / dt_ms (the Nyquist frequency of the steps)."""

    n_freqs: int = 5
    freq_min_hz: float = 1.0
    freq_max_hz: float = 4.0
    n_steps_total: int = 200

    n_inputs = property(lambda self: 1)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_freqs", 1, MAX_COUNT)
        self._require_in("n_steps_total", 1, MAX_STEPS)
        ok = 0 < self.freq_min_hz <= self.freq_max_hz
        self._require("freq_min_hz", ok, f"in (0, freq_max_hz = {self.freq_max_hz}]")
        # At or above Nyquist the sampled sine aliases to a lower frequency (or to zeros at exactly Nyquist).
        nyquist = 500 / self.dt_ms
        self._require("freq_max_hz", self.freq_max_hz < nyquist, f"< 500 / dt_ms = {nyquist:g} (the Nyquist frequency)")

    def sample(self, batch_size, generator=None):
        j = torch.randint(0, self.n_freqs, (batch_size,), generator=generator)
        step = (self.freq_max_hz - self.freq_min_hz) / max(self.n_freqs - 1, 1)
        freq = self.freq_min_hz + j * step
        t_s = torch.arange(self.n_steps_total) * self.dt_ms / 1000
        targets = torch.sin(2 * math.pi * freq[:, None] * t_s[None, :])[..., None]
        inputs = (j.float() / self.n_freqs + 0.25)[:, None, None].expand(-1, self.n_steps_total, 1).clone()
        return TaskBatch(inputs, targets, torch.ones_like(targets), {"freq_hz": freq})

    def score(self, outputs, batch):
        return r2_score(outputs, batch)
