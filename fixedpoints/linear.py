"""Exact Jacobians and their eigen-decomposition, batched over points.

Linearising around a fixed point x* (Sussillo & Barak 2013, eq. 2):

    F(x* + δx, u* + δu) ≈ x* + J δx + B δu,   J = ∂F/∂x,  B = ∂F/∂u   (discrete time)
    ẋ ≈ J δx + B δu,                           J = ∂ẋ/∂x                 (continuous time)

Stable in discrete time when every |λ(J)| < 1, in continuous time when every Re λ(J) < 0; the point's
index is the number of unstable directions. For an Euler step x + Δt·v the two are related by
λ_d = 1 + Δt·λ_c. Jacobians come from ``torch.func`` (``vmap`` of ``jacrev``); a model that ``vmap``
cannot trace (``.item()``, data-dependent control flow or shapes, ``requires_grad_`` or in-place writes to
captured tensors inside the map, an op without a batching rule) falls back to one batched backward pass
with replicated states. Any other error, out-of-memory above all, is the model's or the machine's and is
raised as it is: the fallback needs D times the memory.
"""

from __future__ import annotations

import torch

from .adapters import Dynamics

#: points per chunk are chosen so that a chunk's Jacobians hold about this many numbers
JACOBIAN_CHUNK_ELEMENTS = 1 << 24


def _chunks(n_points: int, n_state: int):
    size = max(1, JACOBIAN_CHUNK_ELEMENTS // max(1, n_state * n_state))
    for start in range(0, n_points, size):
        yield slice(start, min(start + size, n_points))


#: phrases of the errors torch.func raises when it cannot transform a function (torch 2.2-2.13)
_TRANSFORM_ERROR_MARKERS = ("vmap", "functorch", "torch.func", "batching rule", "grad (vjp, jvp, grad, etc) transform")
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError: 2.5+


def _is_transform_error(err: BaseException) -> bool:
    """Did ``vmap``/``jacrev`` refuse to trace the model (as opposed to the model failing, or memory running
    out)? Only then does the replicated backward pass have a chance to do better."""
    if isinstance(err, _OUT_OF_MEMORY) or not isinstance(err, (RuntimeError, NotImplementedError)):
        return False
    text = str(err).lower()
    if any(phrase in text for phrase in ("out of memory", "can't allocate memory", "not enough memory")):
        return False
    return any(marker in text for marker in _TRANSFORM_ERROR_MARKERS)


def _jacobian_vmap(fn, x: torch.Tensor, u: torch.Tensor, wrt_input: bool):
    def single(xi, ui):
        out = fn(xi[None], ui[None])[0]
        return out, out

    argnums = (0, 1) if wrt_input else 0
    jac, value = torch.func.vmap(torch.func.jacrev(single, argnums=argnums, has_aux=True))(x, u)
    if wrt_input:
        return value, jac[0], jac[1]
    return value, jac, None


def _jacobian_replicated(fn, x: torch.Tensor, u: torch.Tensor, wrt_input: bool):
    """One backward pass through ``D`` replicas of each point, seeded with the identity."""
    n, d = x.shape
    with torch.enable_grad():
        x_rep = x.detach().repeat_interleave(d, dim=0).requires_grad_(True)
        u_rep = u.detach().repeat_interleave(d, dim=0).requires_grad_(wrt_input)
        out = fn(x_rep, u_rep)
        seeds = torch.eye(d, dtype=out.dtype, device=out.device).repeat(n, 1)
        wanted = (x_rep, u_rep) if wrt_input else (x_rep,)
        grads = torch.autograd.grad(out, wanted, seeds, allow_unused=True)
    value = out.detach()[::d]
    jx = grads[0].reshape(n, d, d)
    ju = None
    if wrt_input:
        ju = grads[1] if grads[1] is not None else torch.zeros_like(u_rep)
        ju = ju.reshape(n, d, u.shape[1])
    return value, jx, ju


def jacobians(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, wrt_input: bool = False):
    """``(F(x,u) [K,D], ∂F/∂x [K,D,D], ∂F/∂u [K,D,I] or None)`` of the model's map (or velocity), exact."""
    n, d, i = x.shape[0], x.shape[1], u.shape[1]
    if n == 0:
        return x.new_zeros(0, d), x.new_zeros(0, d, d), (x.new_zeros(0, d, i) if wrt_input else None)
    values, jxs, jus = [], [], []
    want_u = wrt_input and u.shape[1] > 0
    for part in _chunks(x.shape[0], x.shape[1]):
        try:
            value, jx, ju = _jacobian_vmap(dyn.fn, x[part], u[part], want_u)
        except (RuntimeError, NotImplementedError) as err:
            if not _is_transform_error(err):
                raise
            value, jx, ju = _jacobian_replicated(dyn.fn, x[part], u[part], want_u)  # a model vmap cannot trace
        values.append(value.detach())
        jxs.append(jx.detach())
        if want_u:
            jus.append(ju.detach())
    ju_all = None
    if wrt_input:
        ju_all = torch.cat(jus) if want_u else x.new_zeros(x.shape[0], x.shape[1], u.shape[1])
    return torch.cat(values), torch.cat(jxs), ju_all


def residual_jacobian(dyn: Dynamics, jac: torch.Tensor) -> torch.Tensor:
    """∂(F(x) - x)/∂x = J - I in discrete time; ∂ẋ/∂x = J in continuous time."""
    if dyn.continuous:
        return jac
    return jac - torch.eye(jac.shape[-1], dtype=jac.dtype, device=jac.device)


def eigen(jac: torch.Tensor, continuous: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``[K,D]`` and right eigenvectors ``[K,D,D]`` (columns), sorted most unstable first:
    by |λ| descending (discrete) or Re λ descending (continuous)."""
    if jac.shape[0] == 0:
        empty = torch.zeros(jac.shape[:2], dtype=torch.complex128, device=jac.device)
        return empty, torch.zeros(jac.shape, dtype=torch.complex128, device=jac.device)
    vals, vecs = torch.linalg.eig(jac)
    key = vals.real if continuous else vals.abs()
    order = torch.argsort(key, dim=1, descending=True)
    vals = torch.gather(vals, 1, order)
    vecs = torch.gather(vecs, 2, order[:, None, :].expand_as(vecs))
    return vals, vecs


def count_unstable(eigvals: torch.Tensor, continuous: bool) -> torch.Tensor:
    """The index of each point: eigenvalues with |λ| > 1 (discrete) or Re λ > 0 (continuous)."""
    unstable = eigvals.real > 0 if continuous else eigvals.abs() > 1
    return unstable.sum(dim=1)
