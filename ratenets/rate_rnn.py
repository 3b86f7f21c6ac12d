"""Continuous-time rate RNNs as trained by Kim, Li & Sejnowski 2019 (PNAS), and a discrete sibling.

Euler step of the rate model (Δt = ``dt_ms``, per-unit synaptic decay τ_i):

    x_t = (1 - Δt/τ) ⊙ x_{t-1} + (Δt/τ) ⊙ (W r_{t-1} + W_in u_{t-1}) + N(0, σ²),   r = φ(x)
    o_t = W_out r_t + b_out

``W[i, j]`` is the weight from unit j onto unit i. With Dale's law each unit is excitatory or
inhibitory (inhibitory with probability ``p_inh``) and ``W = relu(W_raw) · diag(signs)``. The τ of
each unit is ``sigmoid(g)·(τmax - τmin) + τmin`` with trainable ``g ~ N(0, 1)``.

Initialisation departs from the reference code on purpose: the reference draws |N(0,1)|/sqrt(N·p)·gain
for all entries, so every row has more excitation than inhibition and W has one large outlier
eigenvalue along the all-ones vector (their issue #3). Here the inhibitory weights of each row are
rescaled so that the row sums to zero (exact E/I balance), then the whole matrix is scaled so the
bulk's radius sqrt(N)·std(W) equals ``gain``; the outlier disappears.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import _validate
from .checkpoint import register_model
from .rollout import Rollout

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": nn.functional.softplus,
    "relu": torch.relu,
}
MAX_UNITS = 20_000  # a [N, N] float32 weight matrix of 1.6 GB; larger asks are typos, not networks
MAX_CHANNELS = 10_000  # inputs or outputs


@dataclass(frozen=True)
class RateRNNConfig:
    """Knobs of a Kim-style rate network; defaults from Kim et al. 2019 unless said."""

    n_units: int = 200
    n_inputs: int = 1
    n_outputs: int = 1
    dt_ms: float = 5.0
    activation: str = "sigmoid"
    dale: bool = True
    p_inh: float = 0.2
    p_rec: float = 0.2
    gain: float = 1.5
    balanced_init: bool = True
    tau_min_ms: float = 20.0
    tau_max_ms: float = 100.0
    train_tau: bool = True
    train_input: bool = False
    noise_std: float = 0.1
    init_state_std: float = 0.01
    # Readout init N(0, readout_init_std²); None: 1/sqrt(n_units). Kim et al. draw N(0, 1)/100, i.e. 0.01.
    readout_init_std: float | None = None
    # Loss term readout_l2·‖w_out‖². A LIF readout's spike noise grows with ‖w_out‖ (each filtered spike train
    # fluctuates by ~sqrt(rate/2τd)), so a small readout that moves many units together transfers better.
    readout_l2: float = 0.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Range checks; run on construction (and by ``dataclasses.replace``), so a config that exists is valid."""
        _validate.choice("activation", self.activation, ACTIVATIONS)
        _validate.integer("n_units", self.n_units, 1, MAX_UNITS)
        _validate.integer("n_inputs", self.n_inputs, 1, MAX_CHANNELS)
        _validate.integer("n_outputs", self.n_outputs, 1, MAX_CHANNELS)
        for name in ("dale", "balanced_init", "train_tau", "train_input"):
            _validate.boolean(name, getattr(self, name))
        _validate.real("p_rec", self.p_rec, 0, 1, open_low=True)
        _validate.real("p_inh", self.p_inh, 0, 1, open_high=True)
        _validate.real("gain", self.gain, 0, open_low=True)
        _validate.real("tau_min_ms", self.tau_min_ms, 0, open_low=True)
        _validate.real("tau_max_ms", self.tau_max_ms, self.tau_min_ms, low_name="tau_min_ms")
        _validate.real("dt_ms", self.dt_ms, 0, self.tau_min_ms, open_low=True, high_name="tau_min_ms")
        _validate.real("noise_std", self.noise_std, 0)
        _validate.real("init_state_std", self.init_state_std, 0)
        if self.readout_init_std is not None:
            _validate.real("readout_init_std", self.readout_init_std, 0, open_low=True)
        _validate.real("readout_l2", self.readout_l2, 0)


def dale_signs(n_units: int, p_inh: float, generator: torch.Generator) -> torch.Tensor:
    """+1 for excitatory, -1 for inhibitory units; at least one of each when both are asked for."""
    inh = torch.rand(n_units, generator=generator) < p_inh
    if p_inh > 0 and n_units > 1:
        inh[0], inh[-1] = False, True  # keep both populations present in tiny networks
    return torch.where(inh, -1.0, 1.0)


def init_recurrent(cfg: RateRNNConfig, signs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sparse |N(0,1)|/sqrt(N·p)·gain weights (Kim et al.); with ``balanced_init`` each row's inhibitory
    weights are rescaled so that the row's signed sum is zero."""
    n = cfg.n_units
    w = torch.randn(n, n, generator=generator).abs() * cfg.gain / math.sqrt(n * cfg.p_rec)
    w = w * (torch.rand(n, n, generator=generator) < cfg.p_rec)
    w.fill_diagonal_(0)
    if cfg.dale and cfg.balanced_init and (signs < 0).any():
        exc = (w * (signs > 0)).sum(dim=1, keepdim=True)
        inh = (w * (signs < 0)).sum(dim=1, keepdim=True)
        factor = torch.where(inh > 0, exc / inh.clamp_min(1e-12), torch.ones_like(inh))
        w = torch.where(signs[None, :] < 0, w * factor, w)
        # Rescale so the bulk's radius, sqrt(N)·std(W_eff), equals the gain (circular law).
        spread = (w * signs[None, :]).std()
        if spread > 0:  # a tiny sparse draw can be all zeros
            w = w * cfg.gain / (math.sqrt(n) * spread)
    if not cfg.dale:
        w = w * torch.where(torch.rand(n, n, generator=generator) < 0.5, -1.0, 1.0)
    return w


@register_model
class RateRNN(nn.Module):
    """Kim-style continuous-time rate network. ``forward(inputs [B,T,I]) -> Rollout``; the dynamics
    map is exposed as ``step(x, u)`` (one Euler step, no noise) and ``velocity(x, u)`` (dx/dt, per ms)."""

    config_class = RateRNNConfig

    def __init__(self, cfg: RateRNNConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        signs = dale_signs(cfg.n_units, cfg.p_inh, g) if cfg.dale else torch.ones(cfg.n_units)
        self.register_buffer("signs", signs)
        self.w_rec_raw = nn.Parameter(init_recurrent(cfg, signs, g))
        w_in = torch.randn(cfg.n_units, cfg.n_inputs, generator=g)
        self.w_in = nn.Parameter(w_in, requires_grad=cfg.train_input)
        w_out = torch.randn(cfg.n_outputs, cfg.n_units, generator=g)
        w_out = w_out / math.sqrt(cfg.n_units) if cfg.readout_init_std is None else w_out * cfg.readout_init_std
        self.w_out = nn.Parameter(w_out)
        self.b_out = nn.Parameter(torch.zeros(cfg.n_outputs))
        self.tau_gate = nn.Parameter(torch.randn(cfg.n_units, generator=g), requires_grad=cfg.train_tau)
        self.phi = ACTIVATIONS[cfg.activation]

    def regularizer(self, rollout: Rollout) -> torch.Tensor:
        """The term the shared training loop adds to the task loss: ``readout_l2·‖w_out‖²``."""
        return self.cfg.readout_l2 * self.w_out.pow(2).sum()

    # --- the weights the transfer and the analyses read -------------------------------------------
    def w_rec(self) -> torch.Tensor:
        """Effective recurrent weights ``[N, N]`` (post, pre), Dale signs applied."""
        if self.cfg.dale:
            return torch.relu(self.w_rec_raw) * self.signs[None, :]
        return self.w_rec_raw

    def taus_ms(self) -> torch.Tensor:
        """Per-unit synaptic decay τ in ms, ``[N]``."""
        c = self.cfg
        if c.tau_min_ms == c.tau_max_ms:
            return torch.full_like(self.tau_gate, c.tau_min_ms)
        return torch.sigmoid(self.tau_gate) * (c.tau_max_ms - c.tau_min_ms) + c.tau_min_ms

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi(x)

    def readout(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.w_out.T + self.b_out

    # --- dynamics ---------------------------------------------------------------------------------
    def velocity(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """dx/dt in 1/ms: ``(-x + W φ(x) + W_in u) / τ``."""
        drive = self.phi(x) @ self.w_rec().T + u @ self.w_in.T
        return (drive - x) / self.taus_ms()

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One noiseless Euler step of ``dt_ms``."""
        return x + self.cfg.dt_ms * self.velocity(x, u)

    def initial_state(
        self, batch_size: int, device=None, dtype=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_0 = 0, plus N(0, init_state_std²) in training mode (Kim et al.: randn/100), drawn from
        ``generator`` (the global RNG when None)."""
        x0 = torch.zeros(batch_size, self.cfg.n_units, device=device, dtype=dtype)
        if self.training and self.cfg.init_state_std > 0:
            x0 = x0 + self.cfg.init_state_std * torch.randn(x0.shape, generator=generator, device=device, dtype=dtype)
        return x0

    def forward(
        self,
        inputs: torch.Tensor,
        x0: torch.Tensor | None = None,
        noise: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Run a batch. Recurrent noise is on in training mode unless ``noise`` says otherwise; the initial state
        and the noise are drawn from ``generator`` (on the inputs' device; the global RNG when None)."""
        batch, n_steps, _ = inputs.shape
        noise = self.training if noise is None else noise
        x = self.initial_state(batch, inputs.device, inputs.dtype, generator) if x0 is None else x0
        alpha = (self.cfg.dt_ms / self.taus_ms()).expand(batch, -1)
        w_rec_t = self.w_rec().T
        # [B,N] per step, computed once; unbind (not drive[:, t]) so that backward stacks the per-step gradients
        # once instead of scattering each into a fresh [B,T,N] zero tensor (4x slower with trainable inputs).
        drive_in = (inputs @ self.w_in.T).unbind(dim=1)
        noise_std = self.cfg.noise_std if noise else 0.0
        if noise_std:  # drawn in one call; added after each step as in Kim et al.
            drive_noise = noise_std * torch.randn(
                batch, n_steps, self.cfg.n_units, generator=generator, device=inputs.device, dtype=inputs.dtype
            )
        states = []
        for t in range(n_steps):
            # x ← x + α·(W φ(x) + W_in u_t − x): one fused matmul-add and one lerp per step
            x = torch.lerp(x, torch.addmm(drive_in[t], self.phi(x), w_rec_t), alpha)
            if noise_std:
                x = x + drive_noise[:, t]
            states.append(x)
        states = torch.stack(states, dim=1)
        r = self.phi(states)
        return Rollout(self.readout(r), states, rates=r)

    def config_dict(self) -> dict:
        return asdict(self.cfg)


@dataclass(frozen=True)
class DiscreteRNNConfig:
    """A vanilla discrete-time RNN, ``h_t = φ(W h_{t-1} + W_in u_t + b)``, as in Sussillo & Barak 2013."""

    n_units: int = 64
    n_inputs: int = 1
    n_outputs: int = 1
    activation: str = "tanh"
    gain: float = 0.9
    dt_ms: float = 5.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Range checks; run on construction (and by ``dataclasses.replace``), so a config that exists is valid."""
        _validate.choice("activation", self.activation, ACTIVATIONS)
        _validate.integer("n_units", self.n_units, 1, MAX_UNITS)
        _validate.integer("n_inputs", self.n_inputs, 1, MAX_CHANNELS)
        _validate.integer("n_outputs", self.n_outputs, 1, MAX_CHANNELS)
        _validate.real("gain", self.gain, 0)
        _validate.real("dt_ms", self.dt_ms, 0, open_low=True)


@register_model
class DiscreteRNN(nn.Module):
    """Discrete-time vanilla RNN with the project's model contract (``forward``, ``step``)."""

    config_class = DiscreteRNNConfig

    def __init__(self, cfg: DiscreteRNNConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        n = cfg.n_units
        self.w_rec = nn.Parameter(torch.randn(n, n, generator=g) * cfg.gain / math.sqrt(n))
        self.w_in = nn.Parameter(torch.randn(n, cfg.n_inputs, generator=g) / math.sqrt(cfg.n_inputs))
        self.bias = nn.Parameter(torch.zeros(n))
        self.w_out = nn.Parameter(torch.randn(cfg.n_outputs, n, generator=g) / math.sqrt(n))
        self.b_out = nn.Parameter(torch.zeros(cfg.n_outputs))
        self.phi = ACTIVATIONS[cfg.activation]

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.phi(h @ self.w_rec.T + u @ self.w_in.T + self.bias)

    def forward(self, inputs: torch.Tensor, h0: torch.Tensor | None = None) -> Rollout:
        h = inputs.new_zeros(inputs.shape[0], self.cfg.n_units) if h0 is None else h0
        drive_in = (inputs @ self.w_in.T + self.bias).unbind(dim=1)  # unbind: see RateRNN.forward
        states = []
        for t in range(inputs.shape[1]):
            h = self.phi(h @ self.w_rec.T + drive_in[t])
            states.append(h)
        states = torch.stack(states, dim=1)
        return Rollout(states @ self.w_out.T + self.b_out, states)

    def config_dict(self) -> dict:
        return asdict(self.cfg)
