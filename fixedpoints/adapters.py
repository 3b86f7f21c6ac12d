"""Turn whatever recurrent model a user has into one pure map of a state, without changing the model.

Accepted (first match wins):

* a spiking model (it has ``rate_net`` or ``smooth_surrogate``): refused, analyse ``surrogate_for(model)``;
* a stock ``nn.RNN``/``nn.GRU``/``nn.LSTM`` or ``*Cell`` (see :mod:`fixedpoints.stock` for the state layout);
* an object with ``velocity(x, u)`` and no ``step`` (or ``continuous=True``): continuous time, solve ``ẋ = 0``;
* an object with ``step(x, u)``: discrete time, solve ``F(x, u) = x``;
* any other callable ``f(x, u) -> next state`` (``continuous=True``: ``-> dx/dt``). The argument order is
  read from the parameter names of its ``forward`` (or the function itself): ``forward(x, h)`` /
  ``forward(input, hidden)`` take the input first, ``f(h, u)`` / ``f(x, u)`` the state first; where the
  names do not tell, a plain function is called state first (the documented convention) and an
  ``nn.Module`` is tried both ways on the states' shapes (one clear error when both work: pass
  ``state_first``).

A continuous-time system is simulated (``topology``, ``state_trajectories``) by Euler steps of a ``dt``
the caller gives; no attribute of the model is read for it.

The model is analysed through a private deep copy with gradients off and in eval mode, once in its own
dtype (for the fast first phase) and once in float64 (for the polish and the linearisation). Where a
copy cannot be made the model itself is frozen and put in eval mode, and both are restored in a
``finally``; either way the user's parameters, their ``requires_grad`` flags and train/eval mode are as
they were. A model that cannot be copied, or a plain callable, cannot be cast either: its ``precise``
map is the model's own, and ``Dynamics.cast_note`` says why (``find`` reports it in ``info["polish"]``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import stock

StateMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Dynamics:
    """A model as a pure batched map: ``fn(x [B,D], u [B,I]) -> [B,D]`` is the next state (discrete) or
    ``dx/dt`` (continuous). ``dt`` is the Euler step used to simulate a continuous system (the model's time
    unit; ``None`` until a caller gives one). ``time_guessed``: discrete time was assumed for a plain callable
    (no ``step``/``velocity`` and ``continuous`` not given), so ``find`` checks that it is not a velocity."""

    fn: StateMap
    continuous: bool
    n_state: int | None
    n_inputs: int | None
    dtype: torch.dtype | None
    device: torch.device | None
    dt: float | None = None
    description: str = ""
    layout_text: str = ""
    #: why this map is not in the precise dtype asked for ("" when it is, or when none was asked for)
    cast_note: str = ""
    time_guessed: bool = False
    #: False for a module whose argument order its parameter names do not tell (``find`` tries both)
    order_known: bool = True

    def residual(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``F(x, u) - x`` (discrete) or ``ẋ`` (continuous); zero exactly at a fixed point."""
        out = self.fn(x, u)
        return out if self.continuous else out - x

    def advance(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step of the dynamics: ``F(x, u)``, or an Euler step ``x + dt·ẋ`` in continuous time."""
        out = self.fn(x, u)
        if not self.continuous:
            return out
        if self.dt is None:
            raise ValueError(f"{self.description} is continuous-time: give dt, the Euler step to simulate it with "
                             "(in the model's time unit)")
        return x + self.dt * out


def surrogate_for(model):
    """The smooth model through which a spiking model is analysed.

    Resetting a membrane after a spike is a jump: the map is not differentiable and a Jacobian of it
    means nothing. A transferred LIF network (Kim et al. 2019) is analysed through the rate network its
    weights came from (the transfer scales rates to currents linearly, so fixed points correspond
    one-to-one); an LSNN through its filtered-rate dynamics. A spiking model declares its surrogate by an
    attribute ``rate_net`` or a method ``smooth_surrogate()``; a smooth model is returned as it is.
    """
    if hasattr(model, "smooth_surrogate"):
        return model.smooth_surrogate()
    if getattr(model, "rate_net", None) is not None:
        return model.rate_net
    raise TypeError(
        f"{type(model).__name__} has no smooth surrogate: spiking models are analysed through their smooth "
        "surrogate (a transferred LIF network through its rate network: give it a `rate_net` attribute, "
        "or define `smooth_surrogate()`); a spike reset is not differentiable"
    )


def _is_spiking(model) -> bool:
    return hasattr(model, "smooth_surrogate") or getattr(model, "rate_net", None) is not None


def _owner(model):
    """The object holding the parameters: the model, or the instance a bound method belongs to."""
    return getattr(model, "__self__", model) if callable(model) and hasattr(model, "__func__") else model


def _first_float(owner) -> tuple[torch.dtype | None, torch.device | None]:
    if isinstance(owner, nn.Module):
        for tensor in list(owner.parameters()) + list(owner.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype, tensor.device
    return None, None


def _n_inputs(owner) -> int | None:
    cfg = getattr(owner, "cfg", None)
    for source, name in ((cfg, "n_inputs"), (owner, "n_inputs"), (owner, "input_size")):
        value = getattr(source, name, None) if source is not None else None
        if isinstance(value, int):
            return value
    return None


def _n_state(owner) -> int | None:
    cfg = getattr(owner, "cfg", None)
    for source, name in ((owner, "n_state"), (cfg, "n_units"), (owner, "n_units"), (owner, "hidden_size")):
        value = getattr(source, name, None) if source is not None else None
        if isinstance(value, int):
            return value
    return None


_STATE_NAMES = {"h", "hx", "h0", "h_prev", "hidden", "hiddens", "hidden_state", "state", "states", "s", "carry"}
_INPUT_NAMES = {"u", "inp", "input", "inputs", "u_t", "x_t", "ext", "external", "stimulus", "drive"}


def _argument_names(fn) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]


def _state_first_from_names(fn) -> bool | None:
    """True for ``f(state, input)``, False for ``f(input, state)``, None when the names do not tell."""
    names = [name.lower() for name in _argument_names(fn)]
    if len(names) < 2:
        return None
    first, second = names
    if second in _STATE_NAMES or first in _INPUT_NAMES:
        return False
    if second in _INPUT_NAMES or first in _STATE_NAMES:
        return True
    return None


def _callable_dynamics(owner, continuous, state_first, dtype, device) -> Dynamics:
    fn = owner.forward if isinstance(owner, nn.Module) else owner
    name = f"{type(owner).__name__}.forward" if isinstance(owner, nn.Module) else \
        f"callable {getattr(owner, '__name__', type(owner).__name__)}"
    args = "(" + ", ".join(_argument_names(fn)) + ")"
    if state_first is None:
        state_first = _state_first_from_names(fn)
    order = "input, state"
    if state_first is False:
        call = lambda x, u: owner(u, x)  # noqa: E731
    else:
        call = owner
    return Dynamics(call, bool(continuous), _n_state(owner), _n_inputs(owner), dtype, device,
                    description=f"{name}{args} called as ({order})" if state_first is False else name + args,
                    time_guessed=continuous is None,
                    order_known=state_first is not None or not isinstance(owner, nn.Module))


def _build(model, owner, continuous: bool | None, state_first: bool | None = None) -> Dynamics:
    """The ``Dynamics`` of ``model`` whose parameters live in ``owner`` (a copy or the original)."""
    dtype, device = _first_float(owner)
    if stock.is_stock(owner):
        lay = stock.layout(owner)
        if continuous:
            raise TypeError(f"{type(owner).__name__} is a discrete-time map; continuous=True does not apply")
        step = lambda x, u: stock.stock_step(owner, lay, x, u)  # noqa: E731
        return Dynamics(step, False, lay.n_state, lay.n_inputs, dtype, device,
                        description=f"stock {type(owner).__name__} ({lay.kind})", layout_text=lay.describe())
    if model is not owner and hasattr(model, "__func__"):  # a bound method: rebind it to the copy
        fn = getattr(owner, model.__name__)
        is_cont = bool(continuous) or (continuous is None and model.__name__ == "velocity")
        return Dynamics(fn, is_cont, _n_state(owner), _n_inputs(owner), dtype, device,
                        description=f"{type(owner).__name__}.{model.__name__}")
    has_step, has_velocity = hasattr(owner, "step"), hasattr(owner, "velocity")
    if continuous is None and (has_step or has_velocity):
        continuous = has_velocity and not has_step
    if continuous and has_velocity:
        return Dynamics(owner.velocity, True, _n_state(owner), _n_inputs(owner), dtype, device,
                        description=f"{type(owner).__name__}.velocity (continuous time)")
    if continuous and has_step:
        raise TypeError(f"continuous=True needs {type(owner).__name__}.velocity(x, u); it only has step(x, u)")
    if has_step and not continuous:
        return Dynamics(owner.step, False, _n_state(owner), _n_inputs(owner), dtype, device,
                        description=f"{type(owner).__name__}.step")
    if callable(owner):
        return _callable_dynamics(owner, continuous, state_first, dtype, device)
    raise TypeError(
        f"cannot analyse a {type(owner).__name__}: give an object with step(x, u) or velocity(x, u), a callable "
        "f(x, u), or a stock torch.nn.RNN/GRU/LSTM (or *Cell)"
    )


@contextlib.contextmanager
def frozen_in_place(owner):
    """Gradients off and eval mode on ``owner`` for the duration; both restored in a ``finally``."""
    if not isinstance(owner, nn.Module):
        yield owner
        return
    flags = [(p, p.requires_grad) for p in owner.parameters()]
    modes = [(m, m.training) for m in owner.modules()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        owner.eval()
        yield owner
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def _private_copy(owner, dtype: torch.dtype | None):
    """``(copy, "")``: a frozen eval-mode deep copy of ``owner`` (cast to ``dtype`` when given), or
    ``(None, why)`` when it cannot be made."""
    if not isinstance(owner, nn.Module):
        return None, (f"a {type(owner).__name__} that is not an nn.Module cannot be copied or cast; it computes in "
                      "the dtype of the states it is given")
    try:
        clone = copy.deepcopy(owner)
        clone.requires_grad_(False).eval()
        if dtype is not None:
            clone = clone.to(dtype)
    except Exception as err:  # objects holding un-copyable handles: the caller freezes the model in place
        what = "copied" if dtype is None else f"copied and cast to {dtype}"
        return None, f"{type(owner).__name__} could not be {what} ({type(err).__name__}: {err})"
    return clone, ""


@contextlib.contextmanager
def dynamics_of(model, continuous: bool | None = None, precise_dtype: torch.dtype | None = torch.float64,
                state_first: bool | None = None, dt: float | None = None):
    """Yield ``(fast, precise)`` :class:`Dynamics` of ``model``: ``fast`` in the model's dtype, ``precise``
    in ``precise_dtype`` where the model can be copied and cast (else the same as ``fast``). ``state_first``:
    the argument order of a plain callable or module (``None``: from its parameter names); ``dt``: the Euler
    step that simulates a continuous-time model."""
    if dt is not None and not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if _is_spiking(model):
        raise TypeError(
            f"{type(model).__name__} is a spiking model: spiking models are analysed through their smooth surrogate; "
            "call fixedpoints.find(fixedpoints.surrogate_for(model), ...)"
        )
    owner = _owner(model)
    fast_owner, why = _private_copy(owner, None)
    if fast_owner is None:
        with frozen_in_place(owner):
            dyn = dataclasses.replace(_build(model, owner, continuous, state_first), dt=dt)
            yield dyn, dataclasses.replace(dyn, cast_note=why if precise_dtype is not None else "")
        return
    fast = dataclasses.replace(_build(model, fast_owner, continuous, state_first), dt=dt)
    if precise_dtype is None:
        yield fast, fast
        return
    precise_owner, why = _private_copy(fast_owner, precise_dtype)
    precise = dataclasses.replace(_build(model, precise_owner, continuous, state_first), dt=dt) \
        if precise_owner is not None else dataclasses.replace(fast, cast_note=why)
    yield fast, precise
