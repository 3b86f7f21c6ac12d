"""Long short-term memory spiking networks (LSNN, Bellec et al. 2018): recurrent networks of LIF and
ALIF neurons (``spiking/alif.py`` for the neuron equations and the Bellec 2018 convention), trained
directly with surrogate gradients by the project's one training loop (``ratenets.training.train``).

Network, per step of ``dt_ms`` (units ``0..n_lif-1`` are LIF, the rest ALIF):

    I_t = W_in u_t (+ b_in) + W_rec z_{t-1}             W_rec[i, j]: from unit j onto unit i, W_rec[i, i] = 0
    (v_t, b_t, z_t) = ALIF step with current I_t         refractory for ``refractory_steps`` after a spike
    r_t = κ r_{t-1} + (1 - κ) z_t,  κ = exp(-Δt/τ_out)  leaky-filtered spikes
    y_t = W_out r_t + b_out

With ``dale=True`` each unit is excitatory or inhibitory (``p_inh``) and ``W_rec = relu(W_raw)·diag(signs)``.
The firing-rate regulariser (Bellec et al.) pulls each unit's rate ``f_i`` (Hz, averaged over batch and
time) towards ``target_rate_hz``:  ``rate_reg · mean_i ((f_i - f*) / f*)²``.

The hot loop precomputes the input drive for all steps, folds ``(1 - α)`` into the weights, fuses the
spike, its threshold scaling and refractoriness into one autograd Function and filters the readout
after the loop, so each step costs one matmul and a handful of element-wise kernels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ratenets._validate import integer, real
from ratenets.checkpoint import register_model
from ratenets.rate_rnn import MAX_CHANNELS, MAX_UNITS
from ratenets.rollout import Rollout

from .alif import ALIF, SURROGATE_NAMES, ALIFState, alif_step, decay
from .lsnn_scan import LSNNScan
from .rates import mean_rate_hz, unit_rates_hz


@dataclass(frozen=True)
class LSNNConfig:
    """Knobs of an LSNN. Defaults follow the 3-bit flip-flop LSNN of the KTH thesis cited in
    REFERENCES (τm 20 ms, τa 150 ms, β 1.8, ALIF threshold 0.01; Bellec's LIF threshold 0.03),
    at the flip-flop task's own step of 5 ms (refractory 1 step = 5 ms).

    ``input_scale``, ``rec_scale``: std of the initial input and recurrent weights times sqrt(fan-in), in
    the units of the thresholds. ``input_bias`` adds a trainable constant current per unit, initialised
    at ``-w_in·θ`` with θ ~ U(0, 1), so that with one analog input channel (a pixel) each unit starts as a
    detector of "input above θ" (w > 0) or "below θ" (w < 0): the threshold-crossing population code
    Bellec et al. used for sequential MNIST, learned instead of fixed."""

    n_lif: int = 50
    n_alif: int = 50
    n_inputs: int = 3
    n_outputs: int = 3
    dt_ms: float = 5.0
    tau_m_ms: float = 20.0
    tau_a_ms: float = 150.0
    beta: float = 1.8
    threshold_lif: float = 0.03
    threshold_alif: float = 0.01
    refractory_steps: int = 1
    tau_out_ms: float = 20.0
    dale: bool = False
    p_inh: float = 0.2
    surrogate: str = "bellec"
    dampening: float = 0.3
    input_scale: float = 0.1
    rec_scale: float = 0.05
    target_rate_hz: float = 10.0
    rate_reg: float = 0.05
    input_bias: bool = False

    @property
    def n_units(self) -> int:
        return self.n_lif + self.n_alif

    def __post_init__(self):
        self.check()  # validated once, when built; frozen after (use dataclasses.replace)

    def check(self) -> None:
        for name in ("n_lif", "n_alif"):
            integer(name, getattr(self, name), 0, MAX_UNITS)
        for name in ("n_inputs", "n_outputs"):
            integer(name, getattr(self, name), 1, MAX_CHANNELS)
        integer("refractory_steps", self.refractory_steps, 0, 1_000_000)
        for f in fields(self):
            if f.type in (float, "float"):
                real(f.name, getattr(self, f.name))
        if self.n_lif < 0 or self.n_alif < 0 or self.n_units < 1:
            raise ValueError(f"need n_lif >= 0, n_alif >= 0 and at least one unit, got {self.n_lif}, {self.n_alif}")
        for name in ("dt_ms", "tau_m_ms", "tau_out_ms", "threshold_lif", "threshold_alif", "dampening"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.tau_a_ms > 0:
            raise ValueError(f"tau_a_ms must be > 0, got {self.tau_a_ms}")
        if not self.target_rate_hz > 0:
            raise ValueError(f"target_rate_hz must be > 0, got {self.target_rate_hz}")
        if self.target_rate_hz * self.dt_ms / 1000 >= 1:
            raise ValueError(f"target_rate_hz must be below one spike per step ({1000 / self.dt_ms:g} Hz)")
        if self.beta < 0 or self.rate_reg < 0 or self.input_scale < 0 or self.rec_scale < 0:
            raise ValueError("beta, rate_reg, input_scale and rec_scale must be >= 0")
        if self.refractory_steps < 0:
            raise ValueError(f"refractory_steps must be >= 0, got {self.refractory_steps}")
        if not 0 <= self.p_inh < 1:
            raise ValueError(f"p_inh must be in [0, 1), got {self.p_inh}")
        if self.surrogate not in SURROGATE_NAMES:
            raise ValueError(f"surrogate must be one of {', '.join(SURROGATE_NAMES)}, got {self.surrogate!r}")


def exp_filter(x: torch.Tensor, kappa: float, block: int = 256) -> torch.Tensor:
    """``y_t = κ y_{t-1} + (1 - κ) x_t`` along dim 1 of ``x [B, T, D]``, ``y_{-1} = 0``.

    Computed blockwise as a matrix product with the kernel ``(1-κ)·κ^(t-s)`` so autograd sees a few
    matmuls instead of T element-wise steps."""
    n_steps = x.shape[1]
    length = min(block, n_steps)
    t = torch.arange(length, device=x.device, dtype=x.dtype)
    lag = t[:, None] - t[None, :]
    kernel = torch.where(lag >= 0, (1 - kappa) * kappa ** lag.clamp_min(0), torch.zeros_like(lag))
    carry_gain = kappa ** (t + 1)  # weight of the previous block's last value
    pieces, carry = [], None
    for start in range(0, n_steps, length):
        xb = x[:, start : start + length]
        k = kernel[: xb.shape[1], : xb.shape[1]]
        yb = torch.matmul(k, xb)
        if carry is not None:
            yb = yb + carry_gain[: xb.shape[1], None] * carry[:, None, :]
        pieces.append(yb)
        carry = yb[:, -1]
    return torch.cat(pieces, dim=1)


@register_model
class LSNN(nn.Module):
    """LIF + ALIF recurrent spiking network. ``forward(inputs [B,T,I], state=None) -> Rollout`` with
    ``outputs [B,T,O]``, ``states [B,T,N+n_alif]`` (membranes ``v`` of all units, then the adaptation
    ``b`` of the ALIF units), ``rates [B,T,N]`` (the filtered spikes the readout sees; detached) and
    ``spikes [B,T,N]``. ``step(state, u)`` is one step of the same dynamics on an ``ALIFState``."""

    config_class = LSNNConfig

    def __init__(self, cfg: LSNNConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        n, n_lif = cfg.n_units, cfg.n_lif
        g = torch.Generator().manual_seed(seed)
        is_alif = torch.arange(n) >= n_lif
        self.neurons = ALIF(
            n,
            tau_m_ms=cfg.tau_m_ms,
            tau_a_ms=cfg.tau_a_ms,
            beta=torch.where(is_alif, cfg.beta, 0.0),
            threshold=torch.where(is_alif, cfg.threshold_alif, cfg.threshold_lif),
            refractory_steps=cfg.refractory_steps,
            dt_ms=cfg.dt_ms,
            surrogate_name=cfg.surrogate,
            dampening=cfg.dampening,
        )
        if cfg.dale:
            inh = torch.rand(n, generator=g) < cfg.p_inh
            if cfg.p_inh > 0 and n > 1:
                inh[0], inh[-1] = False, True  # both populations present in tiny networks
            signs = torch.where(inh, -1.0, 1.0)
        else:
            signs = torch.ones(n)
        self.register_buffer("signs", signs)
        self.register_buffer("no_autapse", 1.0 - torch.eye(n))
        w_rec = torch.randn(n, n, generator=g) * cfg.rec_scale / math.sqrt(n)
        if cfg.dale:
            w_rec = w_rec.abs()
            n_exc, n_inh = int((signs > 0).sum()), int((signs < 0).sum())
            if n_inh:  # inhibitory columns scaled so that rows balance on average
                w_rec = torch.where(signs[None, :] < 0, w_rec * n_exc / n_inh, w_rec)
        self.w_rec_raw = nn.Parameter(w_rec)
        self.w_in = nn.Parameter(torch.randn(n, cfg.n_inputs, generator=g) * cfg.input_scale / math.sqrt(cfg.n_inputs))
        self.b_in = None
        if cfg.input_bias:
            theta = torch.rand(n, generator=g)
            self.b_in = nn.Parameter(-(self.w_in.detach().sum(dim=1)) * theta)
        self.w_out = nn.Parameter(torch.randn(cfg.n_outputs, n, generator=g) / math.sqrt(n))
        self.b_out = nn.Parameter(torch.zeros(cfg.n_outputs))

    # --- weights and parameters ---------------------------------------------------------------
    def w_rec(self) -> torch.Tensor:
        """Effective recurrent weights ``[N, N]`` (post, pre): Dale signs applied, no autapses."""
        w = torch.relu(self.w_rec_raw) * self.signs[None, :] if self.cfg.dale else self.w_rec_raw
        return w * self.no_autapse

    def input_current(self, u: torch.Tensor) -> torch.Tensor:
        """``W_in u (+ b_in)`` for inputs ``[..., I]``."""
        current = torch.matmul(u, self.w_in.T)
        return current + self.b_in if self.b_in is not None else current

    @property
    def dt_ms(self) -> float:
        """The step of the network, its inputs and its rollout (ms); the task's step."""
        return self.cfg.dt_ms

    def mean_rate_hz(self, rollout: Rollout) -> float:
        """Mean firing rate (Hz) of a rollout of this network (``spiking.rates.mean_rate_hz`` with its ``dt_ms``)."""
        return mean_rate_hz(rollout, self)

    def unit_groups(self) -> dict[str, range]:
        """Unit indices by neuron type, ``{"LIF": ..., "ALIF": ...}`` (for ``plot_raster(groups=...)``)."""
        return {"LIF": range(self.cfg.n_lif), "ALIF": range(self.cfg.n_lif, self.cfg.n_units)}

    def readout_decay(self) -> float:
        return math.exp(-self.cfg.dt_ms / self.cfg.tau_out_ms)

    def initial_state(self, batch_size: int, device=None) -> ALIFState:
        return self.neurons.initial_state(batch_size, device or self.w_in.device)

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def smooth_surrogate(self, temperature: float = 0.2):
        """The smooth map through which fixed-point analyses see this network (``spiking.lsnn_surrogate``)."""
        from .lsnn_surrogate import LSNNSurrogate

        return LSNNSurrogate(self, temperature)

    # --- dynamics -----------------------------------------------------------------------------
    def step(self, state: ALIFState, u: torch.Tensor) -> ALIFState:
        """One step from ``state`` with input ``u [B, I]`` (the reference implementation of the loop)."""
        current = self.input_current(u) + state.z @ self.w_rec().T
        params = self.neurons.parameters_tuple()
        return alif_step(current, state, params, self.cfg.dt_ms, self.neurons.spike_grad)[1]

    def forward(self, inputs: torch.Tensor, state: ALIFState | None = None) -> Rollout:
        batch, n_steps, _ = inputs.shape
        cfg, p = self.cfg, self.neurons.parameters_tuple()
        if state is None:
            state = self.initial_state(batch, inputs.device)
        alpha = decay(p.tau_m_ms, cfg.dt_ms, dtype=inputs.dtype).to(inputs)
        rho = decay(p.tau_a_ms, cfg.dt_ms, dtype=inputs.dtype).to(inputs)
        gain = 1 - alpha
        # (1 - α) folded into the weights; the input drive of every step in one matmul, time-major.
        drive = self.input_current(inputs.transpose(0, 1)) * gain
        w_rec_t = (self.w_rec() * gain[:, None]).T.contiguous()
        thr, beta = p.threshold.to(inputs), p.beta.to(inputs)
        n_ref = p.refractory_steps
        if cfg.surrogate == "bellec":
            z_tm, v_tm, b_tm = LSNNScan.apply(
                drive,
                w_rec_t,
                alpha,
                rho,
                thr,
                beta,
                state.v,
                state.b,
                state.z,
                state.refractory,
                n_ref,
                cfg.dampening,
            )
        else:
            z_tm, v_tm, b_tm = self._loop(drive, w_rec_t, alpha, rho, thr, beta, state)
        spikes = z_tm.transpose(0, 1)
        states = torch.cat([v_tm, b_tm[..., cfg.n_lif :]], dim=-1).transpose(0, 1)
        kappa = self.readout_decay()
        outputs = exp_filter(spikes @ self.w_out.T, kappa) + self.b_out
        with torch.no_grad():
            rates = torch.empty_like(spikes)
            r = torch.zeros_like(spikes[:, 0])
            for t in range(n_steps):
                r = torch.lerp(spikes[:, t], r, kappa, out=rates[:, t])
        return Rollout(outputs, states, rates=rates, spikes=spikes)

    def _loop(self, drive, w_rec_t, alpha, rho, thr, beta, state):
        """The same loop through autograd, for the snntorch surrogates; returns ``[T,B,N]`` tensors."""
        n_ref, spike = self.cfg.refractory_steps, self.neurons.spike_grad
        v, b, z = state.v, state.b, state.z
        # step of each unit's last spike: a count r > 0 of blocked steps means it fired at r - n_ref - 1
        last = torch.where(state.refractory > 0, state.refractory - n_ref - 1, -n_ref - 1).to(torch.int64)
        vs, bs, zs = [], [], []
        for t, drive_t in enumerate(drive.unbind(0)):  # unbind: one gradient stack, not T zero tensors
            b = torch.lerp(z, b, rho)  # ρ b + (1 - ρ) z
            a = torch.addcmul(thr, beta, b)
            v = torch.addcmul(torch.addmm(drive_t, z, w_rec_t), alpha, v)
            v = torch.addcmul(v, a, z.detach(), value=-1.0)
            z = spike(v, a)
            if n_ref > 0:
                z = z * (last < t - n_ref)
                last = torch.where(z.detach() > 0, t, last)
            vs.append(v)
            bs.append(b)
            zs.append(z)
        return torch.stack(zs), torch.stack(vs), torch.stack(bs)

    def regularizer(self, rollout: Rollout) -> torch.Tensor:
        """``rate_reg · mean_i ((f_i - f*) / f*)²`` with per-unit rates ``f_i`` in Hz."""
        cfg = self.cfg
        if cfg.rate_reg == 0:
            return rollout.outputs.new_zeros(())
        rates = unit_rates_hz(rollout.spikes, cfg.dt_ms)
        return cfg.rate_reg * (((rates - cfg.target_rate_hz) / cfg.target_rate_hz) ** 2).mean()
