"""Rate→LIF weight mapping of Kim, Li & Sejnowski 2019 (PNAS; reference code rkim35/spikeRNN).

For a trained rate network (recurrent ``W``, input ``W_in``, readout ``w_out``, ``b_out``, per-unit τ) and a
scaling factor λ, the LIF network uses ``W/λ`` as recurrent weights, ``W_in`` unchanged, ``w_out/λ`` as
readout weights and drops ``b_out``; each unit's synaptic decay τd is the rate unit's trained τ.
The LIF filtered rates are in spikes/s; λ maps them back to the rate network's (0, 1) range. The LIF network's
step ``dt_ms`` (one input value per step) is the rate network's ``cfg.dt_ms``.
"""

from __future__ import annotations

import math
import warnings

import torch

from spiking.lif import LIFParams
from spiking.lif_network import LIFNetwork


def check_rate_net(rate_net) -> None:
    """Raise one ``ValueError`` for a rate network the mapping cannot use; warn for a ReLU network."""
    for name in ("w_rec", "w_in", "w_out"):
        if not hasattr(rate_net, name):
            raise ValueError(f"the rate network has no {name!r}; rate_to_lif needs a ratenets.RateRNN-like model")
    taus = getattr(rate_net, "taus_ms", None)
    taus = taus() if callable(taus) else taus
    if taus is None:
        raise ValueError("the rate network has no synaptic time constants (taus_ms); the LIF synaptic decay τd "
                         "is each unit's trained τ, so a network without τ cannot be transferred")
    dt_ms_of(rate_net)
    n_units = rate_net.w_out.shape[-1]
    if not torch.is_tensor(taus) or taus.shape != (n_units,):
        raise ValueError(f"taus_ms must be a tensor of shape ({n_units},), got {getattr(taus, 'shape', taus)}")
    weights = {"w_rec": rate_net.w_rec(), "w_in": rate_net.w_in, "w_out": rate_net.w_out, "taus_ms": taus}
    for name, w in weights.items():
        if not torch.isfinite(w).all():
            raise ValueError(f"the rate network's {name} holds NaN or infinite values; cannot transfer it")
    if not (taus > 0).all():
        raise ValueError("the rate network's taus_ms must all be > 0")
    activation = getattr(getattr(rate_net, "cfg", None), "activation", None)
    if activation == "relu":
        warnings.warn("ReLU rate networks did not convert to LIF networks in Kim et al. 2019 (only sigmoid ones "
                      "did); expect a low LIF score", UserWarning, stacklevel=3)


def dt_ms_of(rate_net) -> float:
    """The rate network's step ``cfg.dt_ms`` (ms), the LIF network's ``dt_ms``; one ``ValueError`` without it."""
    value = getattr(getattr(rate_net, "cfg", None), "dt_ms", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"the rate network has no valid time step cfg.dt_ms (got {value!r}); the LIF network "
                         "takes its step dt_ms from it")
    return float(value)


def check_scale_factor(scale_factor) -> float:
    """``scale_factor`` as a float; one ``ValueError`` unless it is a finite number > 0."""
    if isinstance(scale_factor, bool):
        raise ValueError(f"scale_factor must be a number > 0, got {scale_factor!r}")
    try:
        value = float(scale_factor)
    except (TypeError, ValueError):
        raise ValueError(f"scale_factor must be a number > 0, got {scale_factor!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"scale_factor must be a finite number > 0, got {scale_factor!r}")
    return value


def lif_weights(rate_net, scale_factors: torch.Tensor, keep_readout_bias: bool = False):
    """Stacked LIF weights for several factors: ``(w_rec [S,N,N], w_in [N,I], w_out [S,O,N], tau_d_ms [N],
    b_out [O] or None)``, detached, on the rate network's device."""
    with torch.no_grad():
        inv = 1.0 / scale_factors.to(rate_net.w_out)[:, None, None]
        w_rec = rate_net.w_rec().detach()[None] * inv
        w_out = rate_net.w_out.detach()[None] * inv
        b_out = rate_net.b_out.detach().clone() if keep_readout_bias and hasattr(rate_net, "b_out") else None
        return w_rec, rate_net.w_in.detach().clone(), w_out, rate_net.taus_ms().detach().clone(), b_out


def rate_to_lif(
    rate_net,
    scale_factor: float,
    lif_params: LIFParams | None = None,
    keep_readout_bias: bool = False,
    *,
    warmup_ms: float = 0.0,
) -> LIFNetwork:
    """The LIF network of Kim et al. 2019 for a trained rate network and scaling factor λ.

    ``W/λ`` recurrent, ``W_in`` input, ``w_out/λ`` readout, no readout bias; τd = the rate network's τ.
    ``keep_readout_bias=True`` adds ``b_out`` to the LIF output: a deviation from the paper, useful for
    networks trained with a large readout bias (the paper's networks had none to speak of); it becomes
    the module's ``b_out`` buffer. The step ``dt_ms`` is the rate network's ``cfg.dt_ms``; ``warmup_ms`` (a whole
    number of steps) of zero input run before every trial of the network's ``forward``.

    Raises one ``ValueError`` for λ <= 0, non-finite weights, a network without τ or dt, or a bad warm-up;
    warns for ReLU.
    """
    scale_factor = check_scale_factor(scale_factor)
    lif_params = lif_params or LIFParams()
    check_rate_net(rate_net)
    w_rec, w_in, w_out, tau_d_ms, b_out = lif_weights(rate_net, torch.tensor([scale_factor]), keep_readout_bias)
    return LIFNetwork.from_weights(w_rec[0], w_in, w_out[0], tau_d_ms, lif_params,
                                   dt_ms=dt_ms_of(rate_net), scale_factor=scale_factor, b_out=b_out,
                                   rate_net=rate_net, warmup_ms=warmup_ms)
