"""The transferred LIF network as a model (Kim et al. 2019): ``LIFNetworkConfig`` says what it is, ``LIFNetwork``
holds its weights and runs ``spiking.simulate`` on a batch. The physics is ``spiking.lif``; the mapping from a
rate network is ``transfer.rate_to_lif``. Registered with ``ratenets.register_model``, so a checkpoint written
with ``ratenets.save_checkpoint`` rebuilds with ``ratenets.load_model``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from ratenets.checkpoint import register_model
from ratenets.rollout import Rollout

from .lif import LIFParams, LIFState, initial_state, lif_step, synapse_constants
from .meanfield import LIFMeanField  # imports only spiking.lif: no cycle
from .rates import mean_rate_hz
from .simulate import simulate, spikes_from_events, warmup_steps


@dataclass(frozen=True)
class LIFNetworkConfig:
    """Shapes, neuron parameters and protocol of a transferred LIF network; validated on construction.

    ``dt_ms`` is the step of the inputs, outputs and rollout (the task's and the rate network's step; a whole
    multiple of the LIF integration step ``params.lif_dt_ms``), ``scale_factor`` is λ (the weights are already
    divided by it), ``warmup_ms`` the zero-input time run before each trial and not recorded
    (``spiking.simulate.warmup_steps``). ``params`` may be given as a dict (as a checkpoint stores it)."""

    n_units: int
    n_inputs: int
    n_outputs: int
    params: LIFParams
    dt_ms: float
    scale_factor: float
    warmup_ms: float = 0.0

    #: keys of checkpoints written before the step names were unified, and their names now
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"rate_dt_ms": "dt_ms"}

    def __post_init__(self) -> None:
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", LIFParams(**self.params))
        if not isinstance(self.params, LIFParams):
            raise ValueError(f"LIFNetworkConfig.params must be a LIFParams, got {type(self.params).__name__}")
        for name in ("n_units", "n_inputs", "n_outputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LIFNetworkConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("dt_ms", "scale_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"LIFNetworkConfig.{name} must be a finite number > 0, got {value!r}")
        self.params.substeps(self.dt_ms)
        warmup_steps(self.warmup_ms, self.dt_ms)

    def config_dict(self) -> dict:
        """Plain data (``params`` as a dict); ``LIFNetworkConfig(**cfg.config_dict()) == cfg``."""
        return {**asdict(self), "params": asdict(self.params)}


def _tensor(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    if not torch.is_tensor(value):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value.detach().clone()


@register_model
class LIFNetwork(nn.Module):
    """A transferred LIF network (thin: weights and a config; the dynamics live in ``spiking.lif.lif_step`` and
    ``spiking.simulate.simulate``). Built by ``transfer.rate_to_lif`` through ``LIFNetwork.from_weights``.

    Buffers: ``w_rec [N,N]`` (post, pre) and ``w_out [O,N]`` already divided by ``scale_factor``,
    ``w_in [N,I]``, ``tau_d_ms [N]``, ``b_out [O]`` (zero unless the mapping kept the rate readout's bias).
    ``LIFNetwork(cfg)`` holds zeros of those shapes until ``load_state_dict`` fills them (checkpoints).
    ``rate_net`` is the source rate network when known (its smooth dynamics are the surrogate the fixed-point
    analyses use); it is not part of the module tree, so moving or saving the LIF net never touches it.
    """

    config_class = LIFNetworkConfig

    def __init__(self, cfg: LIFNetworkConfig, seed: int = 0):
        super().__init__()
        del seed  # nothing random to initialise; the argument is the registry's constructor contract
        self.cfg = cfg
        n, i, o = cfg.n_units, cfg.n_inputs, cfg.n_outputs
        self.register_buffer("w_rec", torch.zeros(n, n))
        self.register_buffer("w_in", torch.zeros(n, i))
        self.register_buffer("w_out", torch.zeros(o, n))
        self.register_buffer("tau_d_ms", torch.zeros(n))
        self.register_buffer("b_out", torch.zeros(o))
        self.__dict__["rate_net"] = None

    @classmethod
    def from_weights(
        cls,
        w_rec: torch.Tensor,
        w_in: torch.Tensor,
        w_out: torch.Tensor,
        tau_d_ms: torch.Tensor,
        params: LIFParams,
        dt_ms: float,
        scale_factor: float,
        b_out: torch.Tensor | None = None,
        rate_net: nn.Module | None = None,
        warmup_ms: float = 0.0,
    ) -> LIFNetwork:
        """A network holding copies of the given weights (their device and dtype kept); shapes are checked."""
        if not torch.is_tensor(w_rec) or w_rec.dim() != 2 or not torch.is_tensor(w_in) or w_in.dim() != 2:
            raise ValueError("w_rec [N,N] and w_in [N,I] must be 2-D tensors")
        if not torch.is_tensor(w_out) or w_out.dim() != 2:
            raise ValueError("w_out [O,N] must be a 2-D tensor")
        cfg = LIFNetworkConfig(n_units=w_rec.shape[0], n_inputs=w_in.shape[1], n_outputs=w_out.shape[0],
                               params=params, dt_ms=dt_ms, scale_factor=float(scale_factor),
                               warmup_ms=warmup_ms)
        n, i, o = cfg.n_units, cfg.n_inputs, cfg.n_outputs
        net = cls(cfg)
        net.w_rec = _tensor("w_rec", w_rec, (n, n))
        net.w_in = _tensor("w_in", w_in, (n, i))
        net.w_out = _tensor("w_out", w_out, (o, n))
        net.tau_d_ms = _tensor("tau_d_ms", tau_d_ms, (n,))
        net.b_out = torch.zeros(o).to(w_out) if b_out is None else _tensor("b_out", b_out, (o,))
        net.__dict__["rate_net"] = rate_net
        return net

    @property
    def params(self) -> LIFParams:
        return self.cfg.params

    @property
    def dt_ms(self) -> float:
        return self.cfg.dt_ms

    @property
    def scale_factor(self) -> float:
        return self.cfg.scale_factor

    @property
    def warmup_ms(self) -> float:
        return self.cfg.warmup_ms

    @property
    def n_units(self) -> int:
        return self.cfg.n_units

    def forward(self, inputs: torch.Tensor, generator: torch.Generator | None = None, full_resolution: bool = False,
                **kwargs) -> Rollout:
        """Simulate ``inputs [B,T,I]`` (one value per step of ``dt_ms``, after ``warmup_ms`` of zero input). Returns
        ``Rollout(outputs [B,T,O], states [B,T,N] filtered rates in Hz, rates (the same), spikes)``: ``spikes [B,T,N]``
        uint8 spike counts per step of ``dt_ms``, or with ``full_resolution=True`` ``[B, T·substeps, N]`` 0/1 per LIF
        step of ``params.lif_dt_ms`` (``substeps = dt_ms / lif_dt_ms``, 100 by default; B·T·substeps·N bytes).
        ``kwargs`` go to ``simulate`` (``kernel``, ``dtype``, ``noise_source``, ``v0``)."""
        batch, n_steps = inputs.shape[0], inputs.shape[1]
        res = simulate(self.w_rec, self.w_in, self.w_out, self.tau_d_ms, inputs, self.params,
                       dt_ms=self.dt_ms, warmup_ms=self.warmup_ms, generator=generator, record_rates=True,
                       record_counts=not full_resolution, raster_trials=batch if full_resolution else 0, **kwargs)
        rates = res.rates[0]
        if full_resolution:
            spikes = spikes_from_events(res.raster[:, 1:], batch, n_steps * self.params.substeps(self.dt_ms),
                                        self.n_units)
        else:
            spikes = res.counts[0]
        return Rollout(res.outputs[0] + self.b_out.to(res.outputs), rates, rates=rates, spikes=spikes)

    # --- one LIF step at a time (norse/snntorch style) -------------------------------------------
    def initial_state(self, batch_size: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype | None = None) -> LIFState:
        """The state ``forward`` starts a trial from (no warm-up): fields ``[batch_size, N]``, resting synapses,
        ``v ~ U[v_init_low_mv, v_init_high_mv]`` drawn from ``generator``, on the weights' device."""
        return initial_state((batch_size, self.n_units), self.params, generator, self.w_rec.device,
                             dtype or self.w_rec.dtype)

    def step(self, input_t: torch.Tensor, state: LIFState | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, LIFState]:
        """One LIF step of ``params.lif_dt_ms``: ``(spikes [B,N], next_state)`` for the input ``input_t [B,I]`` (the
        value of the current step of ``dt_ms``, held for its ``dt_ms / lif_dt_ms`` LIF steps). The equations are
        ``spiking.lif``'s; ``state`` (a ``LIFState``, fields ``[B,N]``) defaults to ``initial_state``; the voltage
        noise is drawn from ``generator``. Stepping a trial through this gives ``forward``'s spikes (dense kernel,
        same generator, no warm-up); ``readout(state)`` is the output after the step. Pure: nothing is kept on the
        module."""
        if input_t.dim() != 2 or input_t.shape[1] != self.cfg.n_inputs:
            raise ValueError(f"input_t must be [batch, {self.cfg.n_inputs}], got {tuple(input_t.shape)}")
        if state is None:
            state = self.initial_state(input_t.shape[0], generator, input_t.dtype)
        dtype, device = state.v.dtype, state.v.device
        p = self.params
        drive = p.bias_mv + input_t.to(device=device, dtype=dtype) @ self.w_in.to(device=device, dtype=dtype).T
        noise = 0.0
        if p.noise_std_mv:
            noise = p.noise_std_mv * torch.randn(state.v.shape, generator=generator, device=device, dtype=dtype)
        syn = synapse_constants(self.tau_d_ms.to(device=device, dtype=dtype), p)
        with torch.no_grad():
            return lif_step(state, drive, noise, self.w_rec.to(device=device, dtype=dtype), syn, p)

    def readout(self, state: LIFState) -> torch.Tensor:
        """The output ``[B,O]`` of a state: ``(w_out/λ)·r + b_out`` (``r`` the filtered spike trains, Hz)."""
        return state.r @ self.w_out.to(state.r).T + self.b_out.to(state.r)

    def mean_rate_hz(self, rollout: Rollout) -> float:
        """Mean firing rate (Hz) over trials, units and time of a rollout of this network (either ``spikes``
        resolution); the duration is the rollout's steps times ``dt_ms``."""
        return mean_rate_hz(rollout, self)

    def extra_repr(self) -> str:
        p, tau = self.params, self.tau_d_ms
        taus = f"{float(tau.min()):.3g}..{float(tau.max()):.3g}" if tau.numel() else "-"
        return (f"n_units={self.n_units}, n_inputs={self.cfg.n_inputs}, n_outputs={self.cfg.n_outputs}, "
                f"scale_factor={self.scale_factor:g}, tau_d_ms={taus}, tau_m_ms={p.tau_m_ms:g}, "
                f"tau_rise_ms={p.tau_rise_ms:g}, dt_ms={self.dt_ms:g}, lif_dt_ms={p.lif_dt_ms:g}, "
                f"warmup_ms={self.warmup_ms:g}")

    def config_dict(self) -> dict:
        return self.cfg.config_dict()

    def mean_field(self, sigma_mv: float | None = None) -> nn.Module:
        """This network's own smooth map (``spiking.meanfield.LIFMeanField``): rates r (spikes/s) → the Siegert rate
        of the mean input ``W/λ·r + W_in u + bias``, with the membrane noise's σ; its fixed points depend on λ, τm,
        θ, V_reset, t_ref and the noise, unlike the rate network's. Needs no rate network (works from a checkpoint)."""
        return LIFMeanField(self, sigma_mv)

    def smooth_surrogate(self) -> nn.Module:
        """The smooth map fixed-point analyses see this network through: the rate network its weights came from
        (Kim et al.'s mapping is linear, so fixed points correspond one to one). Declaring it here also marks
        the network as spiking for ``fixedpoints`` when no rate network is attached (rebuilt from a checkpoint):
        then this raises one ``TypeError`` instead of the spikes being differentiated."""
        if self.rate_net is None:
            raise TypeError(
                "LIFNetwork has no smooth surrogate: it holds no rate network (a network rebuilt from a checkpoint "
                "does not); analyse the rate network it was transferred from, or rebuild it with "
                "transfer.rate_to_lif(rate_net, scale_factor)"
            )
        return self.rate_net
