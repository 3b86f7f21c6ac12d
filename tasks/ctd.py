"""Integrator and decision tasks of the computation-thru-dynamics tutorials (Sussillo et al.)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import MAX_STEPS, Task, TaskBatch, r2_score, register


def noisy_evidence(batch_size, n_steps, bias_max, noise_std, generator):
    """White noise around a per-trial bias drawn uniformly in [-bias_max, bias_max]: ``[B,T,1]``."""
    bias = (torch.rand(batch_size, 1, 1, generator=generator) * 2 - 1) * bias_max
    return bias + noise_std * torch.randn(batch_size, n_steps, 1, generator=generator)


@register("integrator")
@dataclass
class Integrator(Task):
    """Output the running integral of the input, ``z_t = gain · Σ_{k<=t} u_k · dt/1000``.
    Score: fraction of target power explained (R² against zero), clipped to [0, 1].

    Allowed: ``n_steps_total`` in [1, MAX_STEPS]; ``bias_max``, ``noise_std`` >= 0; ``gain`` finite."""

    n_steps_total: int = 100
    bias_max: float = 1.0
    noise_std: float = 1.0
    gain: float = 1.0
    dt_ms: float = 10.0

    n_inputs = property(lambda self: 1)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 1, MAX_STEPS)
        self._require("bias_max", self.bias_max >= 0, ">= 0")
        self._require("noise_std", self.noise_std >= 0, ">= 0")

    def sample(self, batch_size, generator=None):
        u = noisy_evidence(batch_size, self.n_steps_total, self.bias_max, self.noise_std, generator)
        z = self.gain * u.cumsum(dim=1) * self.dt_ms / 1000
        return TaskBatch(u, z, torch.ones_like(z), {})

    def score(self, outputs, batch):
        return r2_score(outputs, batch)


@register("decision")
@dataclass
class Decision(Task):
    """Report the sign of the integrated noisy evidence (±1) during the last ``report_steps``.
    Score: fraction of trials whose output at the last step has the right sign.

    Allowed: ``n_steps_total`` in [1, MAX_STEPS]; ``report_steps`` in [1, n_steps_total];
    ``bias_max``, ``noise_std`` >= 0."""

    n_steps_total: int = 100
    report_steps: int = 25
    bias_max: float = 0.5
    noise_std: float = 1.0
    dt_ms: float = 10.0

    n_inputs = property(lambda self: 1)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 1, MAX_STEPS)
        self._require_in("report_steps", 1, self.n_steps_total, "[1, n_steps_total]")
        self._require("bias_max", self.bias_max >= 0, ">= 0")
        self._require("noise_std", self.noise_std >= 0, ">= 0")

    def sample(self, batch_size, generator=None):
        u = noisy_evidence(batch_size, self.n_steps_total, self.bias_max, self.noise_std, generator)
        label = torch.sign(u.sum(dim=1, keepdim=True))
        label[label == 0] = 1
        targets = label.expand(-1, self.n_steps_total, 1).clone()
        mask = torch.zeros_like(targets)
        mask[:, -self.report_steps :] = 1
        return TaskBatch(u, targets * mask, mask, {"label": label[:, 0, 0]})

    def score(self, outputs, batch):
        return float((torch.sign(outputs[:, -1, 0]) == batch.meta["label"]).float().mean())
