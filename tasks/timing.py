"""Cue-set-go interval timing (Jazayeri & Shadlen 2010; seed 004): ramp to 1 at a cued speed after Go."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Task, TaskBatch, register, uniform_int


@register("cue_set_go")
@dataclass
class CueSetGo(Task):
    """A cue of amplitude ``a`` in [0.2, 1] on channel 1 for the whole trial sets the interval
    ``interval_min + (1 - a)/0.8 · (interval_max - interval_min)`` steps; a pulse on channel 2 is Go.
    Target: 0 before Go, then a ramp reaching 1 after the interval, held at 1.
    Correct: the output stays < 0.5 before Go and first crosses 0.9 within ``tolerance`` (fraction of
    the interval) of the target's crossing."""

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
        if not 0 < self.interval_min <= self.interval_max:
            raise ValueError("need 0 < interval_min <= interval_max")
        if self.go_max + self.interval_max + 5 > self.n_steps_total:
            raise ValueError("n_steps_total must exceed go_max + interval_max + 5")

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
        t = torch.arange(o.shape[1])[None, :]
        go, interval = batch.meta["go"], batch.meta["interval"]
        quiet = torch.where(t < go[:, None], o, torch.zeros_like(o)).amax(dim=1) < 0.5
        crossed = (o >= 0.9) & (t >= go[:, None])
        first = torch.where(crossed, t, torch.full_like(t, 10**9)).amin(dim=1).float()
        target_cross = go + torch.ceil(0.9 * interval)
        on_time = (first - target_cross).abs() <= self.tolerance * interval + 1
        return float((quiet & on_time).float().mean())
