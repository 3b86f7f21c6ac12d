"""Minimise q(x) = ½‖r(x, u)‖² for a batch of points, each on its own schedule.

r = F(x, u) - x for a discrete map and r = ẋ in continuous time (Sussillo & Barak 2013, eq. 1).

**Phase 1, Adam** (Golub & Sussillo 2018, FixedPointFinder): Adam with ε = 0.01 on the *mean* q over
the points, as their joint loss is; with gradients that small, ε dominates and each step is a gentle
momentum step along −∇q_i (a gradient flow on q, which also settles on saddles) rather than Adam's
unit-size sign steps, which fling points into saturated regions full of spurious high-index roots. What
differs from theirs: every point has its own learning rate (start 1.0, halved when its q rises, ×1/0.95
when it falls, at most ``adam_lr_max``), its own gradient clipping (95th percentile of its recent norms)
and its own stop: once q < ``handoff_q`` (close enough for Newton), when q stops changing
(|Δq| < ``tol_dq``), or at ``adam_max_iters``.

**Phase 2, Levenberg–Marquardt** (Nocedal & Wright 2006, §10.3) with the exact Jacobian J_r:

    (J_rᵀ J_r + λ I) δ = -J_rᵀ r,   λ = μ · max diag(J_rᵀ J_r)

a step is kept only if q falls (then μ ×0.3, else μ ×4 and retry with the same Jacobian). With μ → 0
this is Newton's method, quadratically convergent at a regular root. Residuals are evaluated in float64;
the Jacobian and the linear algebra may use the model's float32 (``fast_jacobians``): an inexact Jacobian
still converges, linearly at a rate ≈ cond(J_r)·ε₃₂. A Newton step's length estimates the distance to
the root, so a point within twice its step of a point of lower q is merged into it and stops. For
states wider than ``dense_max_dim`` the system is solved matrix-free by conjugate gradients on J_rᵀ J_r products
(``torch.func.jvp``/``vjp``), never forming J. A point stops when q < ``tol_q``·``polish_factor``, when
its damping exceeds ``mu_max`` (a minimum of q that is not a root: a slow point) or at ``lm_max_iters``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .adapters import Dynamics
from .linear import jacobians, residual_jacobian


@dataclass
class SolverConfig:
    """Knobs of the two phases; Adam's from FixedPointFinder where they exist."""

    tol_q: float = 1e-12
    tol_dq: float = 1e-20
    adam_lr: float = 1.0
    adam_lr_max: float = 100.0
    adam_eps: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_max_iters: int = 5000
    lr_shrink: float = 0.5
    lr_grow: float = 1 / 0.95
    clip_quantile: float = 0.95
    clip_window: int = 20
    handoff_q: float = 1e-2
    lm_max_iters: int = 50
    mu_init: float = 1e-3
    mu_up: float = 4.0
    mu_down: float = 0.3
    mu_max: float = 1e8
    polish_factor: float = 1e-4
    merge_tol: float = 1e-3
    merge_every: int = 10
    merge_step_factor: float = 2.0
    merge_tol_max: float = 0.05
    fast_jacobians: bool = True
    dense_max_dim: int = 512
    cg_iters: int = 50

    def check(self) -> None:
        for name in ("tol_q", "adam_lr", "adam_lr_max", "adam_eps", "handoff_q", "mu_init", "mu_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("adam_max_iters", "lm_max_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr_shrink < 1 < self.lr_grow or not 0 < self.mu_down < 1 < self.mu_up:
            raise ValueError("need 0 < lr_shrink < 1 < lr_grow and 0 < mu_down < 1 < mu_up")


def q_of(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """q = ½‖r‖² per point, ``[B]``."""
    r = dyn.residual(x, u)
    return 0.5 * (r * r).sum(dim=1)


def adam_phase(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, cfg: SolverConfig
               ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Phase 1 on all points; returns the points, a mask of those merged into a neighbour of lower q
    (every ``merge_every`` iterations, points within ``merge_tol`` of one with lower q stop: they are
    heading for the same place) and the number of iterations run."""
    x = x.detach().clone()
    n = x.shape[0]
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    lr = torch.full((n,), cfg.adam_lr, dtype=x.dtype, device=x.device)
    q_prev = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
    norms = torch.full((n, cfg.clip_window), float("inf"), dtype=x.dtype, device=x.device)
    active = torch.arange(n, device=x.device)
    beta1, beta2 = cfg.adam_betas
    iteration = 0
    for iteration in range(1, cfg.adam_max_iters + 1):
        xa = x[active].requires_grad_(True)
        with torch.enable_grad():
            qa = q_of(dyn, xa, u[active])
            # gradient of the mean q over all points, as in FixedPointFinder's joint loss: with ε = 0.01
            # Adam then takes gentle, gradient-proportional steps (a gradient flow on q that stops at
            # saddles too) instead of unit-size sign steps that fling points into saturated regions
            (grad,) = torch.autograd.grad(qa.sum() / n, xa)
        qa = qa.detach()
        # which points are done: near enough for the polish, stalled, or no longer finite
        done = (qa < cfg.handoff_q) | ((q_prev[active] - qa).abs() < cfg.tol_dq) | ~torch.isfinite(qa)
        rising = qa > q_prev[active]
        grown = (lr[active] * cfg.lr_grow).clamp_max(cfg.adam_lr_max)
        lr[active] = torch.where(rising, lr[active] * cfg.lr_shrink, grown)
        q_prev[active] = qa
        # per-point clipping at the 95th percentile of the point's recent gradient norms
        gnorm = grad.norm(dim=1)
        norms[active, iteration % cfg.clip_window] = gnorm
        limit = torch.quantile(norms[active], cfg.clip_quantile, dim=1)
        limit = torch.where(torch.isfinite(limit), limit, gnorm)
        grad = grad * (limit / gnorm.clamp_min(torch.finfo(x.dtype).tiny)).clamp_max(1.0)[:, None]
        ma = beta1 * m[active] + (1 - beta1) * grad
        va = beta2 * v[active] + (1 - beta2) * grad * grad
        m[active], v[active] = ma, va
        step = (ma / (1 - beta1**iteration)) / ((va / (1 - beta2**iteration)).sqrt() + cfg.adam_eps)
        x[active] = torch.where(done[:, None], x[active], x[active] - lr[active, None] * step)
        if cfg.merge_tol > 0 and iteration % cfg.merge_every == 0:
            dup = _merged(x, q_prev, active, cfg.merge_tol) & ~done
            q_prev[active[dup]] = float("inf")
            done |= dup
        active = active[~done]
        if active.numel() == 0:
            break
    return x, torch.isinf(q_prev), iteration


def _cg_normal_equations(dyn: Dynamics, x, u, r, damping, n_iters: int) -> torch.Tensor:
    """δ solving (J_rᵀJ_r + λI) δ = -J_rᵀ r per point by conjugate gradients, J_r applied matrix-free."""
    res = lambda z: dyn.residual(z, u)  # noqa: E731
    _, pullback = torch.func.vjp(res, x)
    apply_jt = lambda w: pullback(w)[0]  # noqa: E731

    def apply_a(p):
        _, jp = torch.func.jvp(res, (x,), (p,))
        return apply_jt(jp) + damping[:, None] * p

    b = -apply_jt(r)
    delta = torch.zeros_like(x)
    resid, p = b.clone(), b.clone()
    rs = (resid * resid).sum(dim=1)
    tiny = torch.finfo(x.dtype).tiny
    for _ in range(n_iters):
        ap = apply_a(p)
        alpha = rs / (p * ap).sum(dim=1).clamp_min(tiny)
        delta = delta + alpha[:, None] * p
        resid = resid - alpha[:, None] * ap
        rs_new = (resid * resid).sum(dim=1)
        if bool((rs_new <= 1e-30 * (b * b).sum(dim=1).clamp_min(tiny)).all()):
            break
        p = resid + (rs_new / rs.clamp_min(tiny))[:, None] * p
        rs = rs_new
    return delta


def _solve_spd(a: torch.Tensor, b: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Solve the damped normal equations ``a x = b`` (``a`` symmetric positive definite) by Cholesky, in
    chunks: MKL's batched LU failed on 1024 x 200 x 200 batches with two threads. A matrix that is not
    numerically positive definite in its dtype gets no step."""
    out = torch.zeros_like(b)
    for i in range(0, a.shape[0], chunk):
        factor, info = torch.linalg.cholesky_ex(a[i : i + chunk])
        ok = info == 0
        if ok.any():
            out[i : i + chunk][ok] = torch.cholesky_solve(b[i : i + chunk][ok], factor[ok])
    return out


def lm_phase(dyn: Dynamics, x: torch.Tensor, u: torch.Tensor, cfg: SolverConfig,
             jacobian_dyn: Dynamics | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Phase 2: damped Newton on every point; returns the points, their q and the iterations run.

    Residuals and q are evaluated with ``dyn`` (float64 for the polish); the Jacobians and the linear
    algebra may use the cheaper ``jacobian_dyn`` (the model's own float32): an inexact Jacobian still
    converges, linearly at a rate ≈ cond(J_r)·ε₃₂, which is far faster than Adam. Points that come within
    ``merge_tol`` of a point of lower q are merged into it (their q is set to +inf and they stop).
    """
    x = x.detach().clone()
    jdyn = jacobian_dyn if jacobian_dyn is not None else dyn
    lin_dtype = jdyn.dtype or x.dtype
    n, d = x.shape
    dense = d <= cfg.dense_max_dim
    with torch.no_grad():
        q = q_of(dyn, x, u)
    mu = torch.full((n,), cfg.mu_init, dtype=x.dtype, device=x.device)
    active = torch.arange(n, device=x.device)[torch.isfinite(q) & (q > cfg.tol_q * cfg.polish_factor)]
    stale = torch.ones(n, dtype=torch.bool, device=x.device)  # Jacobian must be (re)computed
    jac_r = torch.empty(n, d, d, dtype=lin_dtype, device=x.device) if dense else None
    eye = torch.eye(d, dtype=lin_dtype, device=x.device)
    iteration = 0
    for iteration in range(1, cfg.lm_max_iters + 1):  # noqa: B007 (the count is returned)
        if active.numel() == 0:
            break
        xa, ua = x[active], u[active]
        with torch.no_grad():
            r = dyn.residual(xa, ua)
        if dense:
            need = active[stale[active]]
            if need.numel():
                _, jac, _ = jacobians(jdyn, x[need].to(lin_dtype), u[need].to(lin_dtype))
                jac_r[need] = residual_jacobian(jdyn, jac)
                stale[need] = False
            ja = jac_r[active]
            jt = ja.transpose(1, 2)
            jtj = jt @ ja
            scale = torch.diagonal(jtj, dim1=1, dim2=2).amax(dim=1).clamp_min(torch.finfo(lin_dtype).eps)
            damping = mu[active].to(lin_dtype) * scale
            rhs = -(jt @ r.to(lin_dtype)[:, :, None])
            # A start that blew up (non-finite Jacobian or residual) takes no step rather than break the
            # batched solve; its q stays above tolerance and it is dropped later.
            broken = ~(torch.isfinite(jtj).flatten(1).all(dim=1) & torch.isfinite(rhs).flatten(1).all(dim=1))
            if broken.any():
                jtj = torch.where(broken[:, None, None], torch.zeros_like(jtj), jtj)
                rhs = torch.where(broken[:, None, None], torch.zeros_like(rhs), rhs)
                damping = torch.where(broken, torch.ones_like(damping), damping)
            delta = _solve_spd(jtj + damping[:, None, None] * eye, rhs)[:, :, 0].to(x.dtype)
        else:
            probe = torch.randn_like(xa)
            _, jp = torch.func.jvp(lambda z: dyn.residual(z, ua), (xa,), (probe,))  # noqa: B023
            scale = ((jp * jp).sum(dim=1) / (probe * probe).sum(dim=1)).clamp_min(torch.finfo(x.dtype).eps)
            delta = _cg_normal_equations(dyn, xa, ua, r, mu[active] * scale, min(cfg.cg_iters, d))
        with torch.no_grad():
            trial = xa + delta
            q_trial = q_of(dyn, trial, ua)
        better = torch.isfinite(q_trial) & (q_trial < q[active])
        x[active] = torch.where(better[:, None], trial, xa)
        q[active] = torch.where(better, q_trial, q[active])
        mu[active] = torch.where(better, mu[active] * cfg.mu_down, mu[active] * cfg.mu_up).clamp_min(1e-15)
        stale[active] = better
        done = (q[active] <= cfg.tol_q * cfg.polish_factor) | (mu[active] > cfg.mu_max)
        if cfg.merge_tol > 0:
            # a Newton step's length estimates the distance to the root: points closer than that to a
            # point of lower q are heading for the same root (radius capped at merge_tol_max)
            radius = (cfg.merge_step_factor * delta.norm(dim=1)).clamp(cfg.merge_tol, cfg.merge_tol_max)
            done |= _merged(x, q, active, radius)
            q[active[done & (q[active] > cfg.tol_q * cfg.polish_factor) & (mu[active] <= cfg.mu_max)]] = float("inf")
        active = active[~done]
    return x, q, iteration


def _merged(x: torch.Tensor, q: torch.Tensor, active: torch.Tensor, tol) -> torch.Tensor:
    """For each active point: does a point of lower q (any, not yet merged) lie within ``tol`` (a number or
    one radius per active point)?"""
    alive = torch.isfinite(q).nonzero()[:, 0]
    tol = torch.as_tensor(tol, dtype=x.dtype, device=x.device).reshape(-1, 1)
    near = torch.cdist(x[active], x[alive], compute_mode="donot_use_mm_for_euclid_dist") <= tol
    lower = q[alive][None, :] < q[active][:, None]
    return (near & lower).any(dim=1)


def minimize(fast: Dynamics, precise: Dynamics, x0: torch.Tensor, u: torch.Tensor, cfg: SolverConfig,
             jacobian_dyn: Dynamics | None = None) -> dict:
    """Both phases: Adam in the model's dtype, then the polish in the precise dtype. Returns a dict with
    ``x``, ``q`` (precise dtype) and the iterations of each phase."""
    cfg.check()
    started = time.perf_counter()
    x, merged, adam_iters = adam_phase(fast, x0.to(fast.dtype or x0.dtype), u.to(fast.dtype or u.dtype), cfg)
    dtype = precise.dtype or x.dtype
    x, u = x.to(dtype), u.to(dtype)
    q = torch.full((x.shape[0],), float("inf"), dtype=dtype, device=x.device)
    kept = (~merged).nonzero()[:, 0]
    adam_s = time.perf_counter() - started
    if jacobian_dyn is None and cfg.fast_jacobians:
        jacobian_dyn = fast
    x[kept], q[kept], lm_iters = lm_phase(precise, x[kept], u[kept], cfg, jacobian_dyn=jacobian_dyn)
    return {"x": x, "q": q, "adam_iters": adam_iters, "lm_iters": lm_iters, "n_polished": int(kept.numel()),
            "seconds_adam": adam_s, "seconds_polish": time.perf_counter() - started - adam_s}
