"""N-bit flip-flop (Sussillo & Barak 2013): each output holds the sign of its input's last pulse."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import MAX_COUNT, MAX_STEPS, Task, TaskBatch, register, signs


def hold_last_pulse(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For pulses ``inputs [B,T,K]`` in {-1,0,1}: the last non-zero value so far and its step (-1 if none)."""
    t = torch.arange(inputs.shape[1]).view(1, -1, 1).expand_as(inputs)
    last = torch.where(inputs != 0, t, torch.full_like(t, -1)).cummax(dim=1).values
    held = torch.gather(inputs, 1, last.clamp(min=0)) * (last >= 0)
    return held, last


@register("flipflop")
@dataclass
class FlipFlop(Task):
    """Pulses of ``pulse_steps`` arrive in slots of the same length with probability ``pulse_prob``
    per slot and bit. Scored steps: after a bit's first pulse, outside each pulse and the
    ``settle_steps`` that follow it. Score: fraction of scored (bit, step) signs correct.

    Allowed: ``n_bits`` in [1, MAX_COUNT]; ``n_steps_total`` in [2, MAX_STEPS]; ``pulse_prob`` in (0, 1];
    ``pulse_steps`` in [1, n_steps_total // 2]; ``settle_steps`` in [0, n_steps_total - pulse_steps - 1] (more
    would leave no step scored in any trial)."""

    n_bits: int = 3
    n_steps_total: int = 200
    pulse_prob: float = 0.08
    pulse_steps: int = 5
    settle_steps: int = 5

    def check(self):
        super().check()
        self._require_in("n_bits", 1, MAX_COUNT)
        self._require_in("n_steps_total", 2, MAX_STEPS)
        self._require("pulse_prob", 0 < self.pulse_prob <= 1, "in (0, 1]")
        self._require_in("pulse_steps", 1, self.n_steps_total // 2, "[1, n_steps_total // 2]")
        # The earliest scored step follows a lone pulse in the first slot: it ends at pulse_steps - 1
        # and scoring starts settle_steps + 1 later, which must still be inside the trial.
        last = self.n_steps_total - self.pulse_steps - 1
        self._require_in("settle_steps", 0, last, "[0, n_steps_total - pulse_steps - 1]")

    @property
    def n_inputs(self):
        return self.n_bits

    @property
    def n_outputs(self):
        return self.n_bits

    @property
    def n_steps(self):
        return self.n_steps_total

    def sample(self, batch_size, generator=None):
        n_slots = self.n_steps_total // self.pulse_steps
        on = torch.rand(batch_size, n_slots, self.n_bits, generator=generator) < self.pulse_prob
        slots = on * signs((batch_size, n_slots, self.n_bits), generator)
        pulses = slots.repeat_interleave(self.pulse_steps, dim=1)
        inputs = torch.zeros(batch_size, self.n_steps_total, self.n_bits)
        inputs[:, : pulses.shape[1]] = pulses
        targets, last = hold_last_pulse(inputs)
        t = torch.arange(self.n_steps_total).view(1, -1, 1)
        mask = ((last >= 0) & (t - last > self.settle_steps)).float()
        return TaskBatch(inputs, targets, mask, {})

    def score(self, outputs, batch):
        m = batch.mask > 0
        return float((torch.sign(outputs[m]) == torch.sign(batch.targets[m])).float().mean())
