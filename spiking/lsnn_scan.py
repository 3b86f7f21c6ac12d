"""The LSNN time loop as one autograd Function with a hand-written backward pass (BPTT).

Forward, for t = 0..T-1 (time-major tensors ``[T, B, N]``; ``D_t`` is the input drive with ``(1 - α)``
folded in, ``W`` the recurrent weights ``[N_pre, N_post]`` with ``(1 - α)`` folded in):

    b_t = ρ b_{t-1} + (1 - ρ) z_{t-1}
    a_t = thr + β b_t
    v_t = α v_{t-1} + D_t + z_{t-1} W - a_t · sg(z_{t-1})       sg: no gradient (reset term)
    z_t = H(v_t - a_t) · ready_t                                 ready_t: not refractory

Backward, with Bellec's pseudo-derivative ψ_t = γ·max(0, 1 - |v_t/a_t - 1|)·ready_t, so that
``∂z/∂v = ψ/a`` and ``∂z/∂a = -ψ v/a²``, and incoming gradients G (zero where an output is unused):

    gz_t = Gz_t + gv_{t+1} Wᵀ + (1 - ρ) gb_{t+1}
    gv_t = Gv_t + α gv_{t+1} + gz_t ψ_t / a_t
    ga_t = -gz_t ψ_t v_t / a_t² - gv_t z_{t-1}
    gb_t = Gb_t + ρ gb_{t+1} + β ga_t
    ∂L/∂D_t = gv_t,   ∂L/∂W = Σ_t z_{t-1}ᵀ gv_t  (one matmul over all steps)

This is the same gradient autograd computes through ``alif.alif_step`` with the ``bellec`` surrogate
(``tests/test_lsnn.py`` checks it); the loop runs without autograd bookkeeping, writes into preallocated
buffers, and computes ψ for all steps at once.
"""

from __future__ import annotations

import torch


class LSNNScan(torch.autograd.Function):
    """``apply(drive, w, alpha, rho, thr, beta, v0, b0, z0, refractory0, n_ref, dampening) -> (Z, V, B)``.

    ``drive [T,B,N]``, ``w [N,N]`` (pre, post), per-neuron ``alpha, rho, thr, beta [N]``, initial
    ``v0, b0, z0 [B,N]`` and ``refractory0 [B,N]`` (steps each unit is still blocked). Gradients flow to
    ``drive``, ``w``, ``v0``, ``b0`` and ``z0``; the neuron parameters are constants. Every per-step
    operation works on ``[B,N]`` slices that stay in cache and writes into preallocated buffers."""

    @staticmethod
    def forward(ctx, drive, w, alpha, rho, thr, beta, v0, b0, z0, refractory0, n_ref: int, dampening: float):
        n_steps = drive.shape[0]
        spikes = torch.empty_like(drive)
        volts = torch.empty_like(drive)
        adapt = torch.empty_like(drive)
        thresholds = torch.empty_like(drive)
        ready_all = torch.empty_like(drive) if n_ref > 0 else None
        countdown = refractory0.to(drive.dtype).clone()  # steps a unit is still blocked
        blocked_after_spike = torch.full_like(countdown, float(n_ref))
        v, b, z = v0, b0, z0
        for t in range(n_steps):
            b = torch.lerp(z, b, rho, out=adapt[t])  # ρ b + (1 - ρ) z
            a = torch.addcmul(thr, beta, b, out=thresholds[t])
            v_new = torch.addmm(drive[t], z, w, out=volts[t])
            v_new.addcmul_(alpha, v).addcmul_(a, z, value=-1.0)
            v = v_new
            z = torch.gt(v, a, out=spikes[t])
            if n_ref > 0:
                z.mul_(torch.le(countdown, 0.0, out=ready_all[t]))
                countdown.sub_(1.0).lerp_(blocked_after_spike, z)
        ctx.save_for_backward(w, alpha, rho, beta, z0, spikes, volts, thresholds, ready_all)
        ctx.dampening = dampening
        ctx.set_materialize_grads(False)
        return spikes, volts, adapt

    @staticmethod
    def backward(ctx, grad_spikes, grad_volts, grad_adapt):
        w, alpha, rho, beta, z0, spikes, volts, thresholds, ready_all = ctx.saved_tensors
        n_steps, dampening = spikes.shape[0], ctx.dampening
        grad_v_all = torch.empty_like(volts)
        w_t = w.T
        one_minus_rho = 1.0 - rho
        zeros = torch.zeros_like(z0)
        inv_a, ratio, dz_dv, minus_ga = (torch.empty_like(z0) for _ in range(4))
        gv_next, gb_next = zeros, zeros
        for t in range(n_steps - 1, -1, -1):
            # ψ/a with ψ = γ·max(0, 1 - |v/a - 1|)·ready, from this step's v and a
            torch.reciprocal(thresholds[t], out=inv_a)
            torch.mul(volts[t], inv_a, out=ratio)
            torch.sub(ratio, 1.0, out=dz_dv).abs_().neg_().add_(1.0).clamp_min_(0.0)
            if ready_all is not None:
                dz_dv.mul_(ready_all[t])
            dz_dv.mul_(inv_a).mul_(dampening)
            gz = torch.addmm(grad_spikes[t] if grad_spikes is not None else zeros, gv_next, w_t)
            gz.addcmul_(one_minus_rho, gb_next)
            gv = torch.mul(alpha, gv_next, out=grad_v_all[t])
            if grad_volts is not None:
                gv.add_(grad_volts[t])
            gv.addcmul_(gz, dz_dv)
            # -ga = gz ψ v/a² + gv z_{t-1}
            torch.mul(gz, dz_dv, out=minus_ga).mul_(ratio).addcmul_(gv, spikes[t - 1] if t > 0 else z0)
            gb = torch.mul(rho, gb_next)
            if grad_adapt is not None:
                gb.add_(grad_adapt[t])
            gb.addcmul_(beta, minus_ga, value=-1.0)
            gv_next, gb_next = gv, gb
        grad_z0 = torch.addmm(one_minus_rho * gb_next, gv_next, w_t)
        grad_v0 = alpha * gv_next
        grad_b0 = rho * gb_next
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = z0.T @ grad_v_all[0]
            if n_steps > 1:
                grad_w.addmm_(spikes[:-1].flatten(0, 1).T, grad_v_all[1:].flatten(0, 1))
        return grad_v_all, grad_w, None, None, None, None, grad_v0, grad_b0, grad_z0, None, None, None
