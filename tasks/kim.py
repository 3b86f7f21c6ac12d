"""The three tasks of Kim, Li & Sejnowski 2019 (PNAS), with their timings (5 ms steps) and criteria."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import MAX_STEPS, Task, TaskBatch, crossing_correct, register, signs


@register("gonogo")
@dataclass
class GoNoGo(Task):
    """A pulse on steps [50, 75) means Go: output 1 from step 75; no pulse means NoGo: output 0.
    Correct: Go if max o[75:] > 0.7; NoGo if max |o| < 0.3.

    Allowed: ``n_steps_total`` in [2, MAX_STEPS]; ``stim_off`` in [stim_on + 1, n_steps_total - 1] (Go is
    scored on the steps after the pulse, so some must follow it); ``stim_on`` >= 0; ``go_prob`` in [0, 1]."""

    n_steps_total: int = 200
    stim_on: int = 50
    stim_off: int = 75
    go_prob: float = 0.5

    n_inputs = property(lambda self: 1)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 2, MAX_STEPS)
        self._require_in("stim_on", 0, self.n_steps_total - 2, "[0, n_steps_total - 2]")
        self._require_in("stim_off", self.stim_on + 1, self.n_steps_total - 1, "[stim_on + 1, n_steps_total - 1]")
        self._require_in("go_prob", 0, 1)

    def sample(self, batch_size, generator=None):
        go = (torch.rand(batch_size, generator=generator) < self.go_prob).float()
        inputs = torch.zeros(batch_size, self.n_steps_total, 1)
        inputs[:, self.stim_on : self.stim_off, 0] = go[:, None]
        targets = torch.zeros(batch_size, self.n_steps_total, 1)
        targets[:, self.stim_off :, 0] = go[:, None]
        return TaskBatch(inputs, targets, torch.ones_like(targets), {"go": go})

    def score(self, outputs, batch):
        o = outputs[..., 0]
        go = batch.meta["go"] > 0
        go_ok = o[:, self.stim_off :].amax(dim=1) > 0.7
        nogo_ok = o.abs().amax(dim=1) < 0.3
        return float(torch.where(go, go_ok, nogo_ok).float().mean())


@register("xor")
@dataclass
class XOR(Task):
    """±1 on channel 1 at [50, 100) and channel 2 at [110, 160); target on [170, 270) is +1 when the
    two signs differ and -1 when they agree. Correct if o[200:] crosses ±0.7 on the target's side.

    Allowed: ``n_steps_total`` in [270, MAX_STEPS] (the response window ends at step 270)."""

    n_steps_total: int = 300

    n_inputs = property(lambda self: 2)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 270, MAX_STEPS)

    def sample(self, batch_size, generator=None):
        a, b = signs((batch_size,), generator), signs((batch_size,), generator)
        inputs = torch.zeros(batch_size, self.n_steps_total, 2)
        inputs[:, 50:100, 0] = a[:, None]
        inputs[:, 110:160, 1] = b[:, None]
        label = -(a * b)
        targets = torch.zeros(batch_size, self.n_steps_total, 1)
        targets[:, 170:270, 0] = label[:, None]
        return TaskBatch(inputs, targets, torch.ones_like(targets), {"label": label})

    def score(self, outputs, batch):
        return float(crossing_correct(outputs[..., 0], batch.meta["label"], 200, 0.7).float().mean())


@register("context")
@dataclass
class Context(Task):
    """Context-dependent integration (Mante et al. 2013) as Kim et al. set it: two noisy channels
    N(±offset, noise_std) on steps [50, 250), two one-hot context channels for the whole trial; the
    target from step 250 is the sign of the cued channel's mean. Correct if o[-200:] crosses ±0.7.

    Allowed: ``n_steps_total`` in [450, MAX_STEPS] (200 scored steps after the evidence ends at 250);
    ``offset`` > 0 (at 0 the cued sign, hence the target, is 0); ``noise_std`` >= 0."""

    n_steps_total: int = 500
    offset: float = 0.5
    noise_std: float = 1.0

    n_inputs = property(lambda self: 4)
    n_outputs = property(lambda self: 1)
    n_steps = property(lambda self: self.n_steps_total)

    def check(self):
        super().check()
        self._require_in("n_steps_total", 450, MAX_STEPS)
        self._require("offset", self.offset > 0, "> 0")
        self._require("noise_std", self.noise_std >= 0, ">= 0")

    def sample(self, batch_size, generator=None):
        means = signs((batch_size, 2), generator) * self.offset
        context = torch.randint(0, 2, (batch_size,), generator=generator)
        inputs = torch.zeros(batch_size, self.n_steps_total, 4)
        noise = torch.randn(batch_size, 200, 2, generator=generator) * self.noise_std
        inputs[:, 50:250, :2] = means[:, None, :] + noise
        inputs[:, :, 2:] = torch.nn.functional.one_hot(context, 2).float()[:, None, :]
        label = torch.sign(means.gather(1, context[:, None]))[:, 0]
        targets = torch.zeros(batch_size, self.n_steps_total, 1)
        targets[:, 250:, 0] = label[:, None]
        return TaskBatch(inputs, targets, torch.ones_like(targets), {"label": label, "context": context})

    def score(self, outputs, batch):
        t0 = self.n_steps_total - 200
        return float(crossing_correct(outputs[..., 0], batch.meta["label"], t0, 0.7).float().mean())
