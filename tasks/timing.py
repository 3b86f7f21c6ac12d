"""Cue-set-go interval timing (Jazayeri & Shadlen 2010; seed 004): ramp to 1 at a cued speed after Go."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import MAX_STEPS, Task, TaskBatch, register, uniform_int


@register("cue_set_go")
@dataclass
class CueSetGo(Task):
    """A cue of amplitude ``a`` in [0.2, 1] on channel 1 for the whole trial sets the interval
    ``interval_min + (1 - a)/0.8 · (interval_max - interval_min)`` steps; a pulse on channel 2 is Go.
    Target: 0 before Go, then a ramp reaching 1 after the interval, held at 1.
    Correct: the output stays < 0.5 before Go and first crosses 0.9 within ``tolerance`` (fraction of
    the interval) of the target's crossing.

    Allowed: ``n_steps_total`` in [1, MAX_STEPS]; 1 <= ``interval_min`` <= ``interval_max``;
    0 <= ``go_min`` <= ``go_max``; ``go_max + interval_max + 5 <= n_steps_total`` (the latest ramp ends
    inside the trial, so every trial's crossing can be scored); ``tolerance`` in [0, 1]."""

    n_steps_total: int = 150
    interval_min: int = 20
    interval_max: int = 60
    go_min: int = 10
    go_max: int = 40
    tolerance: float = 0.15

    n_inputs = property(lambda self: 2)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 1, MAX_STEPS)
        self._require("interval_max", self.interval_max >= 1, ">= 1")
        self._require_in("interval_min", 1, self.interval_max, "[1, interval_max]")
        self._require("go_max", self.go_max >= 0, ">= 0")
        self._require_in("go_min", 0, self.go_max, "[0, go_max]")
        end = self.go_max + self.interval_max + 5
        if end > self.n_steps_total:
            raise ValueError(
                f"go_max + interval_max + 5 must be <= n_steps_total = {self.n_steps_total} so that the latest "
                f"ramp ends inside the trial, got {self.go_max} + {self.interval_max} + 5 = {end}"
            )
        self._require_in("tolerance", 0, 1)

    def sample(self, batch_size, generator=None):
        amp = 0.2 + 0.8 * torch.rand(batch_size, generator=generator)
        interval = self.interval_min + (1 - amp) / 0.8 * (self.interval_max - self.interval_min)
        go = uniform_int(self.go_min, self.go_max, (batch_size,), generator)
        t = torch.arange(self.n_steps_total)[None, :]
        inputs = torch.zeros(batch_size, self.n_steps_total, 2)
        inputs[:, :, 0] = amp[:, None]
        inputs[:, :, 1] = ((t >= go[:, None]) & (t < go[:, None] + 2)).float()
        ramp = ((t - go[:, None]).float() / interval[:, None]).clamp(0, 1)
        targets = ramp[..., None]
        meta = {"go": go, "interval": interval}
        return TaskBatch(inputs, targets, torch.ones_like(targets), meta)

    def score(self, outputs, batch):
        o = outputs[..., 0]
        t = torch.arange(o.shape[1], device=o.device)[None, :]
        go, interval = batch.meta["go"], batch.meta["interval"]
        quiet = torch.where(t < go[:, None], o, torch.zeros_like(o)).amax(dim=1) < 0.5
        crossed = (o >= 0.9) & (t >= go[:, None])
        first = torch.where(crossed, t, torch.full_like(t, 10**9)).amin(dim=1).float()
        target_cross = go + torch.ceil(0.9 * interval)
        on_time = (first - target_cross).abs() <= self.tolerance * interval + 1
        return float((quiet & on_time).float().mean())
