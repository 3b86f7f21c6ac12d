"""``find``: fixed and slow points of any recurrent model, from starts sampled on its trajectories.

Sussillo & Barak 2013: minimise q(x) = ½‖F(x, u) − x‖² (or ½‖ẋ‖² in continuous time) from many starts
drawn from the states the network visits, plus Gaussian noise (FixedPointFinder's example: 1024 starts,
noise 0.5); keep the points that reach ``tol_q`` (fixed points) or, when asked, those whose q stays below
``slow_q_max`` (slow points, e.g. along an approximate line attractor); drop outliers and duplicates;
linearise each point that remains.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .adapters import Dynamics, dynamics_of
from .dedup import outlier_mask, unique_lowest_q
from .linear import count_unstable, eigen, jacobians
from .result import FixedPoints
from .solver import SolverConfig, adam_phase, minimize, q_of


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.is_complex():  # casting would drop the imaginary part without a word
        raise ValueError(f"{name} are complex ({value.dtype}); fixed-point analysis works on real states and inputs: "
                         "pass the real part, or real and imaginary parts as separate units")
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    return value.detach()


def _flat_states(states, dyn: Dynamics) -> tuple[torch.Tensor, tuple]:
    states = _as_tensor(states, "states")
    if states.ndim == 0:
        raise ValueError("states must have a last dimension of state units, got a scalar")
    lead = tuple(states.shape[:-1])
    flat = states.reshape(-1, states.shape[-1])
    if dyn.n_state is not None and flat.shape[1] != dyn.n_state:
        layout = f" (state layout: {dyn.layout_text})" if dyn.layout_text else ""
        raise ValueError(f"states have width {flat.shape[1]} but {dyn.description} has {dyn.n_state} "
                         f"state units{layout}")
    bad = ~torch.isfinite(flat)
    if bad.any():
        raise ValueError(f"states contain {int(bad.sum())} NaN or infinite values; give finite states to start from")
    if flat.shape[0] == 0:
        raise ValueError("states are empty: give at least one state to start from")
    return flat, lead


def _flat_inputs(inputs, lead: tuple, n_rows: int, dyn: Dynamics, like: torch.Tensor) -> torch.Tensor:
    if inputs is None:
        return like.new_zeros(n_rows, dyn.n_inputs or 0)
    inputs = _as_tensor(inputs, "inputs").to(like.device)
    if inputs.ndim == 1:
        inputs = inputs.expand(n_rows, inputs.shape[0])
    elif tuple(inputs.shape[:-1]) == lead:
        inputs = inputs.reshape(n_rows, inputs.shape[-1])
    else:
        raise ValueError(f"inputs must be one static input [I] or match the states' leading shape {list(lead)} + [I], "
                         f"got {list(inputs.shape)}")
    if dyn.n_inputs is not None and inputs.shape[1] != dyn.n_inputs:
        raise ValueError(f"inputs have width {inputs.shape[1]} but {dyn.description} takes {dyn.n_inputs}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values")
    return inputs.to(like.dtype)


def check_map(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor) -> None:
    """One clear error if the model cannot be analysed: it fails on these shapes, returns the wrong shape
    or non-finite values, or is not differentiable with respect to the state."""
    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = dyn.fn(x, u)
    except Exception as err:
        raise ValueError(f"{dyn.description} failed on states {list(x.shape)} and inputs {list(u.shape)}: "
                         f"{type(err).__name__}: {err} (is the state width or the input width wrong?)") from err
    if not torch.is_tensor(out):
        raise TypeError(f"{dyn.description} returned a {type(out).__name__}; it must return a tensor, the next state "
                        "(or dx/dt) with the state's shape")
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"{dyn.description} returned shape {list(out.shape)} for states of shape {list(x.shape)}; it "
                         "must return the next state (or dx/dt) with the state's shape")
    if not torch.isfinite(out).all():
        raise ValueError(f"{dyn.description} returned NaN or infinite values on finite states")
    not_diff = (f"{dyn.description} is not differentiable with respect to the state: fixed-point analysis needs "
                "gradients (no .detach(), numpy, rounding or spikes in the map; analyse spiking models through "
                "fixedpoints.surrogate_for(model))")
    if not out.requires_grad:
        raise TypeError(not_diff)
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if grad is None:
        raise TypeError(not_diff)
    if not grad.any() and x.shape[0] > 1 and not (out.detach() == out.detach()[:1]).all():
        raise TypeError(not_diff)  # zero derivative everywhere yet not constant: piecewise constant


def sample_starts(states: torch.Tensor, inputs: torch.Tensor, n_starts: int | None, noise: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_starts`` rows drawn (with replacement when there are fewer states) plus N(0, noise²) per unit;
    ``n_starts=None`` starts from every state."""
    n = states.shape[0]
    if n_starts is None:
        rows = torch.arange(n)
    elif n_starts <= n:
        rows = torch.randperm(n, generator=generator)[:n_starts]
    else:
        rows = torch.randint(0, n, (n_starts,), generator=generator)
    rows = rows.to(states.device)
    jitter = torch.randn(len(rows), states.shape[1], generator=generator, dtype=states.dtype).to(states.device)
    return states[rows] + noise * jitter, inputs[rows]


_WARNED_POLISH: set[str] = set()


def _polish_report(precise: Dynamics, asked: torch.dtype | None, state_dtype: torch.dtype) -> str:
    """``info["polish"]``: the dtype the polish and linearisation ran in and, when it is not the one asked
    for, why (with a warning: q cannot fall much below that dtype's resolution)."""
    used = precise.dtype or state_dtype
    name = str(used).removeprefix("torch.")
    if asked is None:
        return f"{name} (precise_dtype=None)"
    if used == asked:
        return name
    reason = precise.cast_note or (f"{precise.description} holds no floating-point tensors to cast; it computes in "
                                   "the dtype of the states it is given")
    note = f"{name} only: {reason}"
    if note not in _WARNED_POLISH:  # once per reason and process; every result still says so in its info
        _WARNED_POLISH.add(note)
        warnings.warn(f"fixedpoints.find: no {str(asked).removeprefix('torch.')} polish, {note}", RuntimeWarning,
                      stacklevel=3)
    return note


def linearise(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, q: torch.Tensor, tol_q: float,
              info: dict | None = None) -> FixedPoints:
    """Jacobians, input Jacobians and eigen-decomposition at ``x``; points sorted by index, then q."""
    value, jac, jac_u = jacobians(dyn, x, u, wrt_input=True)
    vals, vecs = eigen(jac, dyn.continuous)
    n_unstable = count_unstable(vals, dyn.continuous)
    order = torch.argsort(q, stable=True)
    order = order[torch.argsort(n_unstable[order], stable=True)]
    fps = FixedPoints(x, u, q, value, jac, jac_u, vals, vecs, n_unstable, n_unstable == 0, q > tol_q,
                      continuous=dyn.continuous, tol_q=tol_q, info=dict(info or {}))
    return fps[order]


def find(
    model,
    states,
    inputs=None,
    *,
    n_starts: int | None = 1024,
    noise: float = 0.5,
    tol_q: float = 1e-12,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float = 10.0,
    slow_q_max: float | None = None,
    continuous: bool | None = None,
    seed: int = 0,
    solver: SolverConfig | None = None,
    precise_dtype: torch.dtype | None = torch.float64,
) -> FixedPoints:
    """Fixed points (and, with ``slow_q_max``, slow points) of ``model`` near the ``states`` it visits.

    ``model``: an object with ``step(x, u)`` or ``velocity(x, u)``, a callable ``f(x, u)``, or a stock
    ``nn.RNN``/``GRU``/``LSTM``/``*Cell`` (LSTM state ``[h, c]``). ``states [..., D]``: trajectories to draw
    starts from. ``inputs``: ``None`` (zero input), one static input ``[I]``, or one per state ``[..., I]``.
    ``continuous``: solve ``velocity = 0`` (default: when the model has ``velocity`` and no ``step``).
    The model is left as it was. Returns :class:`FixedPoints`, sorted by index then q.
    """
    if noise < 0 or tol_q <= 0 or tol_unique < 0:
        raise ValueError("noise and tol_unique must be >= 0 and tol_q > 0")
    if n_starts is not None and n_starts < 1:
        raise ValueError(f"n_starts must be >= 1 or None, got {n_starts}")
    solver = solver if solver is not None else SolverConfig()
    solver = SolverConfig(**{**solver.__dict__, "tol_q": tol_q})
    started = time.perf_counter()
    with dynamics_of(model, continuous, precise_dtype) as (fast, precise):
        flat, lead = _flat_states(states, fast)
        device = fast.device or flat.device
        dtype = fast.dtype or flat.dtype
        flat = flat.to(device=device, dtype=dtype)
        u_flat = _flat_inputs(inputs, lead, flat.shape[0], fast, flat)
        generator = torch.Generator().manual_seed(seed)
        x0, u0 = sample_starts(flat, u_flat, n_starts, noise, generator)
        check_map(fast, x0[:64], u0[:64])
        solved = minimize(fast, precise, x0, u0, solver)
        x, q = solved["x"], solved["q"]
        u = u0.to(x.dtype)
        keep = torch.isfinite(q) & torch.isfinite(x).all(dim=1)
        keep &= outlier_mask(x, flat.to(x.dtype), outlier_distance_scale)
        keep &= q <= (tol_q if slow_q_max is None else max(tol_q, slow_q_max))
        candidates = keep.nonzero()[:, 0]
        unique = candidates[unique_lowest_q(x[candidates], q[candidates], tol_unique)]
        info = {"n_starts": int(x0.shape[0]), "n_converged": int((q <= tol_q).sum()),
                "adam_iters": solved["adam_iters"], "lm_iters": solved["lm_iters"], "n_polished": solved["n_polished"],
                "seconds_adam": solved["seconds_adam"], "seconds_polish": solved["seconds_polish"],
                "model": precise.description, "polish": _polish_report(precise, precise_dtype, dtype),
                "seconds_solve": time.perf_counter() - started}
        fps = linearise(precise, x[unique], u[unique], q[unique], tol_q, info)
    fps.info["seconds"] = time.perf_counter() - started
    return fps


def find_slow_points(model, states, inputs=None, *, q_max: float = 1e-6, n_starts: int | None = 1024,
                     noise: float = 0.0, tol_unique: float = 1e-3, continuous: bool | None = None, seed: int = 0,
                     solver: SolverConfig | None = None) -> FixedPoints:
    """Slow points: Adam only, each point stopping once q < ``q_max`` (no Newton polish, which would pull
    every point of an approximate line attractor onto its few exact roots). Points with q <= ``q_max``
    are kept and deduplicated; all are flagged ``is_slow`` unless q <= the solver's ``tol_q``."""
    solver = solver if solver is not None else SolverConfig()
    solver = SolverConfig(**{**solver.__dict__, "handoff_q": q_max, "merge_tol": 0.0})
    with dynamics_of(model, continuous, torch.float64) as (fast, precise):
        flat, lead = _flat_states(states, fast)
        flat = flat.to(device=fast.device or flat.device, dtype=fast.dtype or flat.dtype)
        u_flat = _flat_inputs(inputs, lead, flat.shape[0], fast, flat)
        x0, u0 = sample_starts(flat, u_flat, n_starts, noise, torch.Generator().manual_seed(seed))
        check_map(fast, x0[:64], u0[:64])
        x, _, iters = adam_phase(fast, x0, u0, solver)
        dtype = precise.dtype or x.dtype
        x, u = x.to(dtype), u0.to(dtype)
        with torch.no_grad():
            q = q_of(precise, x, u)
        keep = (q <= q_max).nonzero()[:, 0]
        unique = keep[unique_lowest_q(x[keep], q[keep], tol_unique)]
        return linearise(precise, x[unique], u[unique], q[unique], solver.tol_q, {"adam_iters": iters})


def summarize(fps: FixedPoints) -> dict:
    """The run summary's entry: ``{"n": K, "by_index": {"0": n_stable, "1": ..., ...}, "max_q": float}``."""
    return {
        "n": len(fps),
        "by_index": {str(k): v for k, v in sorted(fps.by_index().items())},
        "max_q": float(fps.q.max()) if len(fps) else 0.0,
    }


@torch.no_grad()
def state_trajectories(model, inputs, x0=None, continuous: bool | None = None) -> torch.Tensor:
    """Run ``model``'s state map over ``inputs [B,T,I]`` from ``x0 [B,D]`` (zeros by default): states
    ``[B,T,D]`` in the layout ``find`` uses (for an LSTM the concatenated ``[h, c]``)."""
    with dynamics_of(model, continuous, None) as (dyn, _):
        inputs = _as_tensor(inputs, "inputs").to(device=dyn.device or "cpu", dtype=dyn.dtype or torch.float32)
        if x0 is None:
            if dyn.n_state is None:
                raise ValueError(f"give x0: the state width of {dyn.description} is not known")
            x0 = inputs.new_zeros(inputs.shape[0], dyn.n_state)
        x = _as_tensor(x0, "x0").to(inputs)
        out = []
        for t in range(inputs.shape[1]):
            x = dyn.advance(x, inputs[:, t])
            out.append(x)
        return torch.stack(out, dim=1)
