"""What ``fixedpoints`` does when it cannot do its best: a model ``vmap`` cannot trace, errors that are not
about tracing (out of memory above all), a model it cannot copy or cast to float64, complex states."""

import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints

torch.set_num_threads(1)


def grid_states(dtype=torch.float64):
    g = torch.linspace(-1.5, 1.5, 9, dtype=dtype)
    return torch.cartesian_prod(g, g)


def polish_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning) and "polish" in str(w.message)]


# --- Jacobians: the replicated fallback is for models vmap cannot trace, and only for them ------------------


def test_jacobians_fall_back_when_vmap_cannot_trace_the_model():
    w = torch.tensor([[1.5, 0.3], [-0.2, 0.8]], dtype=torch.float64)

    def gated(x, u):  # .item() in the map: vmap refuses it, plain autograd does not mind
        return torch.tanh(x @ w.T) if x.abs().max().item() < 100 else x

    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with fixedpoints.dynamics_of(gated) as (dyn, _):
        value, jac, _ = fixedpoints.jacobians(dyn, x, x.new_zeros(5, 0))
    expected = (1 - torch.tanh(x @ w.T) ** 2)[:, :, None] * w[None]  # d tanh(Wx)/dx = diag(1 - tanh²) W
    assert torch.allclose(value, torch.tanh(x @ w.T)) and torch.allclose(jac, expected, atol=1e-12)


def allocate_far_too_much(x, u):
    torch.empty(1 << 60, dtype=torch.uint8)  # the CPU allocator's own out-of-memory error
    return x


@pytest.mark.parametrize("error", [
    None,  # a real CPU out-of-memory RuntimeError, raised by the allocator
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x3 and 4x4)"),  # the model's own bug
], ids=["cpu-oom", "cuda-oom", "model-error"])
def test_other_errors_are_raised_not_retried_with_a_bigger_batch(error):
    rows = []

    def failing(x, u):
        rows.append(x.shape[0])
        if error is None:
            return allocate_far_too_much(x, u)
        raise error

    dyn = fixedpoints.Dynamics(failing, False, 3, 0, torch.float64, None, description="failing map")
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError) as caught:
        fixedpoints.jacobians(dyn, x, x.new_zeros(4, 0))
    assert error is None or caught.value is error
    assert "can't allocate memory" in str(caught.value) or error is not None
    assert rows and max(rows) <= 4  # the replicated fallback would have asked for 4 × 3 = 12 rows at once


# --- the float64 polish: said in info, warned once, when it cannot be had ---------------------------------------


class LockedTanhMap(nn.Module):
    """h' = tanh(W h) with W = diag(2, 0.5), holding a lock as models with open handles do: it cannot be
    deep-copied, so it cannot be cast to float64 either."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.diag(torch.tensor([2.0, 0.5])))
        self.lock = threading.Lock()

    def step(self, x, u):
        return torch.tanh(x @ self.w.T)


def test_a_model_that_cannot_be_copied_is_polished_in_float32_and_says_so():
    net = LockedTanhMap()
    net.train()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = fixedpoints.find(net, grid_states(torch.float32), n_starts=81, noise=0.05, tol_q=1e-10)
        second = fixedpoints.find(net, grid_states(torch.float32), n_starts=81, noise=0.05, tol_q=1e-10)
    for fps in (first, second):
        assert fps.info["polish"].startswith("float32 only: LockedTanhMap could not be copied (TypeError")
    said = polish_warnings(record)
    assert len(said) == 1 and "no float64 polish" in said[0] and "LockedTanhMap" in said[0]  # once, not per call
    assert len(first) == 3 and first.xstar.dtype == torch.float32  # still found, in the model's own dtype
    assert net.training and net.w.requires_grad  # analysed in place, and put back as it was


class HalfTanhMap:
    """A plain callable object (not an nn.Module): nothing to copy or cast."""

    def __call__(self, x, u):
        return torch.tanh(2 * x) * 0.5 + 0.5 * x


def test_plain_callables_and_copyable_models_report_their_polish():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        in_float32 = fixedpoints.find(HalfTanhMap(), grid_states(torch.float32), n_starts=81, noise=0.05)
        in_float64 = fixedpoints.find(HalfTanhMap(), grid_states(torch.float64), n_starts=81, noise=0.05)
        module = fixedpoints.find(nn.RNNCell(2, 2), grid_states(torch.float32), n_starts=16, noise=0.05)
        asked_none = fixedpoints.find(nn.RNNCell(2, 2), grid_states(torch.float32), n_starts=16, noise=0.05,
                                      precise_dtype=None)
    assert in_float32.info["polish"].startswith("float32 only: a HalfTanhMap that is not an nn.Module")
    assert in_float64.info["polish"] == "float64"
    assert module.info["polish"] == "float64"
    assert asked_none.info["polish"] == "float32 (precise_dtype=None)"
    said = polish_warnings(record)
    assert len(said) == 1 and "HalfTanhMap" in said[0]  # only the float32 callable fell short of what was asked


# --- complex states ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["states", "numpy states", "inputs", "x0"])
def test_complex_states_or_inputs_are_refused_not_made_real(where):
    step = lambda x, u: torch.tanh(x)  # noqa: E731
    states = torch.randn(8, 3)
    complex_states = torch.complex(states, torch.ones_like(states))
    with pytest.raises(ValueError, match="complex"):
        if where == "states":
            fixedpoints.find(step, complex_states, n_starts=4)
        elif where == "numpy states":
            fixedpoints.find(step, complex_states.numpy().astype(np.complex128), n_starts=4)
        elif where == "inputs":
            fixedpoints.find(step, states, torch.complex(torch.zeros(2), torch.ones(2)), n_starts=4)
        else:
            fixedpoints.state_trajectories(nn.RNNCell(1, 3), torch.zeros(8, 5, 1), x0=complex_states)
