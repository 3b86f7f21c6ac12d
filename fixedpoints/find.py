"""``find``: fixed and slow points of any recurrent model, from starts sampled on its trajectories.

Sussillo & Barak 2013: minimise q(x) = ½‖F(x, u) − x‖² (or ½‖ẋ‖² in continuous time) from many starts
drawn from the states the network visits, plus Gaussian noise (FixedPointFinder's example: 1024 starts,
noise 0.5); keep the points that reach ``tol_q`` (fixed points) or, when asked, those whose q stays below
``slow_q_max`` (slow points, e.g. along an approximate line attractor); drop outliers and duplicates;
linearise each point that remains.

The start noise defaults to a fraction of the states' spread (their standard deviation), so one default
fits tanh states, sigmoid rates and membrane potentials alike. As a check on the starts, the map is also
run from some of them for a while (``settle_steps``): states that settle are polished and kept (an
attractor the starts missed is found that way), and a warning names any that still lie far from every
point found, or says when no point was found at all.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import torch

from .adapters import Dynamics, dynamics_of
from .dedup import outlier_mask, unique_lowest_q
from .linear import count_unstable, eigen, jacobians
from .result import FixedPoints
from .solver import SolverConfig, adam_phase, lm_phase, minimize, q_of


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
    if value.is_inference():  # made under inference_mode: a normal copy, or autograd refuses it
        value = value.clone()
    return value.detach()


def _own_states(model, states):
    """A model's own rollout states mapped to its state layout by its ``states_from_rollout`` (the LSNN
    surrogate's: rollout states ``[v, b_alif]`` to ``[v, b, ẑ]``), where it has one and the widths differ."""
    convert = getattr(model, "states_from_rollout", None)
    width = getattr(model, "n_state", None)
    if convert is None or not isinstance(width, int):
        return states
    states = _as_tensor(states, "states")
    if states.ndim == 0 or states.shape[-1] == width:
        return states
    with torch.no_grad():
        return convert(states)


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


class MapCallError(ValueError):
    """The model raised when called on the states and inputs (wrong widths, most often)."""


def check_map(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor) -> None:
    """One clear error if the model cannot be analysed: it fails on these shapes, returns the wrong shape
    or non-finite values, or is not differentiable with respect to the state."""
    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = dyn.fn(x, u)
    except Exception as err:
        raise MapCallError(f"{dyn.description} failed on states {list(x.shape)} and inputs {list(u.shape)}: "
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
    # a random probe w: the vector-Jacobian product wᵀJ vanishes for a smooth map only on a set of probes of
    # measure zero (the gradient of out.sum(), w = 1, is exactly zero for maps whose Jacobian's columns sum
    # to zero, e.g. tanh(x @ W) with zero-sum columns of W, or any constant-Jacobian map with that property)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype).to(out.device)
    (grad,) = torch.autograd.grad(out, x, probe, allow_unused=True)
    if grad is None:
        raise TypeError(not_diff)
    if not grad.any() and x.shape[0] > 1 and not (out.detach() == out.detach()[:1]).all():
        raise TypeError(not_diff)  # zero derivative everywhere yet not constant: piecewise constant


def check_time_kind(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, ratio: float = 0.1) -> None:
    """For a plain callable taken as a discrete map (``continuous`` not given): one clear error when it
    looks like a velocity field. At the states a map visits, ``F(x)`` is near ``x``; a velocity ``ẋ`` is
    near zero there, far smaller than ``ẋ - x`` (the median over the starts of ‖f(x)‖ / ‖f(x) - x‖ < ``ratio``)."""
    if not dyn.time_guessed or dyn.continuous:
        return
    with torch.no_grad():
        out = dyn.fn(x, u)
    tiny = torch.finfo(out.dtype).tiny
    typical = float((out.norm(dim=1) / (out - x).norm(dim=1).clamp_min(tiny)).median())
    if typical < ratio:
        raise ValueError(f"{dyn.description} looks like a velocity field dx/dt, not a map to the next state (on the "
                         f"starts |f(x)| is typically {typical:.2g} x |f(x) - x|): pass "
                         "continuous=True to solve f(x, u) = 0, or continuous=False if it returns the next state")


def resolve_order(fast: Dynamics, precise: Dynamics, x: torch.Tensor, u: torch.Tensor):
    """A module whose argument names do not tell (state, input) from (input, state): the order that runs on
    these shapes; one clear error when both do."""
    if fast.order_known:
        return fast, precise
    swap = lambda dyn: dataclasses.replace(  # noqa: E731
        dyn, fn=lambda a, b, f=dyn.fn: f(b, a), order_known=True,
        description=dyn.description + " called as (input, state)")
    works = []
    for candidate in (fast, swap(fast)):
        try:
            with torch.no_grad():
                out = candidate.fn(x, u)
            works.append(torch.is_tensor(out) and tuple(out.shape) == tuple(x.shape))
        except Exception:  # noqa: BLE001 (a shape error is the answer we are looking for)
            works.append(False)
    if works == [True, False]:
        return dataclasses.replace(fast, order_known=True), dataclasses.replace(precise, order_known=True)
    if works == [False, True]:
        return swap(fast), swap(precise)
    if works == [True, True]:
        raise ValueError(f"cannot tell whether {fast.description} takes (state, input) or (input, state): both run on "
                         f"states {list(x.shape)} and inputs {list(u.shape)}; pass state_first=True or False")
    return dataclasses.replace(fast, order_known=True), dataclasses.replace(precise, order_known=True)


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


#: start noise, as fractions of the states' standard deviation, when ``noise`` is not given: the starts are
#: split evenly between the levels; near the states (attractors, the saddles between them, and the starts the
#: settling check runs from) and a state's spread away (the higher-index saddles further out)
RELATIVE_NOISE = (0.05, 1.0)


def _euler_dt(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor) -> float:
    """An Euler step for simulating a continuous-time model: 0.1 / the largest |λ| of its Jacobians at ``x``."""
    _, jac, _ = jacobians(dyn, x, u)
    top = float(torch.linalg.eigvals(jac).abs().max()) if jac.numel() else 0.0
    return 0.1 / top if top > 0 else 1.0


def settle(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, n_steps: int, spread: float):
    """Run the dynamics from ``x`` for ``n_steps`` (Euler steps of :func:`_euler_dt` in continuous time);
    return the end states and a mask of those that settled (‖residual‖ < 1e-6·``spread``)."""
    if dyn.continuous and dyn.dt is None:
        dyn = dataclasses.replace(dyn, dt=_euler_dt(dyn, x[:64], u[:64]))
    with torch.no_grad():
        for _ in range(n_steps):
            x = dyn.advance(x, u)
        r = dyn.residual(x, u)
    ok = torch.isfinite(r).all(dim=1) & (r.norm(dim=1) < 1e-6 * spread)
    return x, ok


def find(
    model,
    states,
    inputs=None,
    *,
    n_starts: int | None = 1024,
    noise: float | None = None,
    relative_noise: float | tuple[float, ...] = RELATIVE_NOISE,
    tol_q: float = 1e-12,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float = 10.0,
    slow_q_max: float | None = None,
    continuous: bool | None = None,
    state_first: bool | None = None,
    settle_steps: int = 500,
    settle_starts: int = 256,
    seed: int = 0,
    solver: SolverConfig | None = None,
    precise_dtype: torch.dtype | None = torch.float64,
) -> FixedPoints:
    """Fixed points (and, with ``slow_q_max``, slow points) of ``model`` near the ``states`` it visits.

    ``model``: an object with ``step(x, u)`` or ``velocity(x, u)``, a callable ``f(x, u)`` (or a module
    whose ``forward`` takes ``(input, hidden)``: read from its parameter names, or say ``state_first``), or a
    stock ``nn.RNN``/``GRU``/``LSTM``/``*Cell`` (LSTM state ``[h, c]``). ``states [..., D]``: trajectories to
    draw starts from (a model may map its own rollout states to its state layout with a method
    ``states_from_rollout``, as the LSNN surrogate does). ``inputs``: ``None`` (zero input), one static
    input ``[I]``, or one per state ``[..., I]``. ``noise``: the start noise's standard deviation (absolute);
    by default ``relative_noise`` times the states' standard deviation (several levels: the starts are split
    evenly between them; the default 0.05 and 1). ``continuous``: solve
    ``velocity = 0`` (default: when the model has ``velocity`` and no ``step``; a plain callable is taken
    as a map, and refused with one line when it looks like a velocity field). ``settle_steps``: run the
    dynamics that long from ``settle_starts`` of the starts; states that settle are polished and kept too,
    and a warning names those that lie far from every point found (0: no check). Works under
    ``torch.no_grad()``/``inference_mode()``. The model is left as it was. Returns :class:`FixedPoints`,
    sorted by index then q, ``xstar``/``inputs``/``F_xstar`` in the model's dtype (q, Jacobians and
    eigenvalues in the polish's ``precise_dtype``).
    """
    levels = (relative_noise,) if isinstance(relative_noise, (int, float)) else tuple(relative_noise)
    if (noise is not None and not noise >= 0) or not levels or not all(r >= 0 for r in levels) or not tol_q > 0 \
            or not tol_unique >= 0:
        raise ValueError("noise, relative_noise and tol_unique must be >= 0 and tol_q > 0")
    if n_starts is not None and n_starts < 1:
        raise ValueError(f"n_starts must be >= 1 or None, got {n_starts}")
    if settle_steps < 0 or settle_starts < 0:
        raise ValueError(f"settle_steps and settle_starts must be >= 0, got {settle_steps}, {settle_starts}")
    solver = solver if solver is not None else SolverConfig()
    solver = SolverConfig(**{**solver.__dict__, "tol_q": tol_q})
    started = time.perf_counter()
    with torch.inference_mode(False), torch.enable_grad(), \
            dynamics_of(model, continuous, precise_dtype, state_first) as (fast, precise):
        flat, lead = _flat_states(_own_states(model, states), fast)
        device = fast.device or flat.device
        dtype = fast.dtype or flat.dtype
        flat = flat.to(device=device, dtype=dtype)
        u_flat = _flat_inputs(inputs, lead, flat.shape[0], fast, flat)
        spread = float(flat.std()) if flat.numel() > 1 else 0.0
        spread = spread if spread > 0 else 1.0
        noises = [r * spread for r in levels] if noise is None else [float(noise)]
        noise_used = noises[0] if len(noises) == 1 else noises
        generator = torch.Generator().manual_seed(seed)
        counts = [None] * len(noises) if n_starts is None else \
            [n_starts // len(noises) + (i < n_starts % len(noises)) for i in range(len(noises))]
        parts = [sample_starts(flat, u_flat, c, level, generator) for c, level in zip(counts, noises) if c != 0]
        x0, u0 = torch.cat([x for x, _ in parts]), torch.cat([u for _, u in parts])
        n_near = parts[0][0].shape[0]  # the settling check runs from the starts nearest the states
        fast, precise = resolve_order(fast, precise, x0[:64], u0[:64])
        try:
            check_map(fast, x0[:64], u0[:64])
        except MapCallError as err:
            if inputs is None and fast.n_inputs is None:
                raise ValueError(f"{err}; inputs=None and the input width of {fast.description} is not known, so it "
                                 "was called with a width-0 input: if it takes an input, pass inputs, e.g. "
                                 "torch.zeros(I) for a zero input of width I") from err
            raise
        check_time_kind(fast, x0[:256], u0[:256])
        solved = minimize(fast, precise, x0, u0, solver)
        x, q = solved["x"], solved["q"]
        u = u0.to(x.dtype)
        n_solved = x.shape[0]
        settled_x = x.new_zeros(0, x.shape[1])
        seconds_settle = 0.0
        if settle_steps and settle_starts:
            t_settle = time.perf_counter()
            picked = torch.randperm(n_near, generator=generator)[:settle_starts].to(x0.device)
            ends, ok = settle(fast, x0[picked], u0[picked], settle_steps, spread)
            ends, u_ends = ends[ok].to(x.dtype), u0[picked][ok].to(x.dtype)
            settled_x = ends
            if ends.shape[0]:  # polish what settled: an attractor the solver's starts missed is kept that way
                jdyn = fast if solver.fast_jacobians else None
                xs, qs, _ = lm_phase(precise, ends, u_ends, solver, jacobian_dyn=jdyn)
                x, q, u = torch.cat([x, xs]), torch.cat([q, qs]), torch.cat([u, u_ends])
            seconds_settle = time.perf_counter() - t_settle
        keep = torch.isfinite(q) & torch.isfinite(x).all(dim=1)
        keep &= outlier_mask(x, flat.to(x.dtype), outlier_distance_scale)
        keep &= q <= (tol_q if slow_q_max is None else max(tol_q, slow_q_max))
        candidates = keep.nonzero()[:, 0]
        unique = candidates[unique_lowest_q(x[candidates], q[candidates], tol_unique)]
        from_settling = int((unique >= n_solved).sum())
        info = {"n_starts": int(x0.shape[0]), "noise": noise_used, "spread": spread,
                "n_converged": int((q[:n_solved] <= tol_q).sum()),
                "adam_iters": solved["adam_iters"], "lm_iters": solved["lm_iters"], "n_polished": solved["n_polished"],
                "seconds_adam": solved["seconds_adam"], "seconds_polish": solved["seconds_polish"],
                "n_settled": int(settled_x.shape[0]), "found_by_settling": from_settling,
                "seconds_settle": seconds_settle,
                "model": precise.description, "polish": _polish_report(precise, precise_dtype, dtype),
                "seconds_solve": time.perf_counter() - started}
        fps = linearise(precise, x[unique], u[unique], q[unique], tol_q, info)
    _warn_gaps(fps, settled_x, spread, tol_unique, settle_steps, noise_used)
    fps = dataclasses.replace(fps, xstar=fps.xstar.to(dtype), inputs=fps.inputs.to(dtype),
                              F_xstar=fps.F_xstar.to(dtype))
    fps.info["seconds"] = time.perf_counter() - started
    return fps


def _warn_gaps(fps: FixedPoints, settled: torch.Tensor, spread: float, tol_unique: float, settle_steps: int,
               noise) -> None:
    """One-line warnings: no point found; states that settled in simulation far from every point found."""
    if len(fps) == 0:
        noise = ", ".join(f"{level:.3g}" for level in (noise if isinstance(noise, list) else [noise]))
        warnings.warn(f"fixedpoints.find: no fixed point found from {fps.info['n_starts']} starts (noise {noise}, "
                      f"states' spread {spread:.3g}); try more starts, another noise or a looser tol_q", RuntimeWarning,
                      stacklevel=3)
        fps.info["gap"] = "no point found"
        return
    if settled.shape[0] == 0:
        return
    far_at = max(10 * tol_unique, 0.05 * spread)
    dist = torch.cdist(settled, fps.xstar.to(settled)).min(dim=1).values
    far = dist > far_at
    fps.info["n_settled_far"] = int(far.sum())
    if far.any():
        fps.info["gap"] = f"{int(far.sum())} settled states far from every point (up to {float(dist.max()):.3g})"
        warnings.warn(f"fixedpoints.find: {int(far.sum())} of {settled.shape[0]} states settled by running the map "
                      f"{settle_steps} steps lie far from every point found (nearest point up to "
                      f"{float(dist.max()):.3g} away, states' spread {spread:.3g}): an attractor may be missed; try "
                      "more starts or another noise", RuntimeWarning, stacklevel=3)


def find_slow_points(model, states, inputs=None, *, q_max: float = 1e-6, n_starts: int | None = 1024,
                     noise: float = 0.0, tol_unique: float = 1e-3, continuous: bool | None = None, seed: int = 0,
                     solver: SolverConfig | None = None) -> FixedPoints:
    """Slow points: Adam only, each point stopping once q < ``q_max`` (no Newton polish, which would pull
    every point of an approximate line attractor onto its few exact roots). Points with q <= ``q_max``
    are kept and deduplicated; all are flagged ``is_slow`` unless q <= the solver's ``tol_q``."""
    solver = solver if solver is not None else SolverConfig()
    solver = SolverConfig(**{**solver.__dict__, "handoff_q": q_max, "merge_tol": 0.0})
    with torch.inference_mode(False), torch.enable_grad(), \
            dynamics_of(model, continuous, torch.float64) as (fast, precise):
        flat, lead = _flat_states(_own_states(model, states), fast)
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
    """The run summary's entry: ``{"n": K, "by_index": {"0": n_stable, "1": ..., ...}, "max_q": float,
    "n_degenerate": int}`` (degenerate: an eigenvalue within ``DEGENERATE_TOL`` of the stability boundary,
    where the index means nothing)."""
    return {
        "n": len(fps),
        "by_index": {str(k): v for k, v in sorted(fps.by_index().items())},
        "max_q": float(fps.q.max()) if len(fps) else 0.0,
        "n_degenerate": int(fps.degenerate.sum()),
    }


@torch.no_grad()
def state_trajectories(model, inputs, x0=None, continuous: bool | None = None, dt: float | None = None,
                       state_first: bool | None = None) -> torch.Tensor:
    """Run ``model``'s state map over ``inputs [B,T,I]`` from ``x0 [B,D]`` (zeros by default): states
    ``[B,T,D]`` in the layout ``find`` uses (for an LSTM the concatenated ``[h, c]``). A continuous-time
    model is run by Euler steps of ``dt`` (required then, in the model's time unit)."""
    with dynamics_of(model, continuous, None, state_first, dt) as (dyn, _):
        given = x0 if torch.is_tensor(x0) and x0.is_floating_point() else None  # a plain callable: x0's dtype
        dtype = dyn.dtype or (given.dtype if given is not None else torch.float32)
        inputs = _as_tensor(inputs, "inputs").to(device=dyn.device or "cpu", dtype=dtype)
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
