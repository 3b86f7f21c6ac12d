"""Topology: which attractor each unstable direction of each saddle leads to.

Maheswaranathan et al. 2019 (universality and individuality) compare networks by their fixed points and
the saddle→attractor connections: start at x* ± ε·v for every unstable eigenvector v of every saddle,
run the dynamics until the state settles (‖r‖ below ``settle_tol``) or ``max_steps`` pass, and record the
stable point it ends within ``match_tol`` of (−1: none of the listed attractors, e.g. a limit cycle or an
attractor the finder missed). The result is a directed graph saddle → attractors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .adapters import dynamics_of
from .result import FixedPoints


@dataclass
class Topology:
    """``edges[k] = (saddle, mode, direction, attractor)``: from point ``saddle`` along its ``mode``-th
    eigenvector in ``direction`` ±1 the state settled at stable point ``attractor`` (−1 if at none).
    Indices refer to the ``FixedPoints`` analysed."""

    edges: list[tuple[int, int, int, int]] = field(default_factory=list)
    end_states: torch.Tensor | None = None
    steps: torch.Tensor | None = None

    def graph(self) -> dict[int, list[int]]:
        """Saddle → sorted list of the attractors its unstable modes lead to."""
        out: dict[int, set[int]] = {}
        for saddle, _, _, attractor in self.edges:
            out.setdefault(saddle, set()).add(attractor)
        return {s: sorted(a) for s, a in sorted(out.items())}

    def adjacency(self, n_points: int) -> torch.Tensor:
        """``[K, K]`` counts of (saddle, attractor) connections."""
        adj = torch.zeros(n_points, n_points, dtype=torch.long)
        for saddle, _, _, attractor in self.edges:
            if attractor >= 0:
                adj[saddle, attractor] += 1
        return adj


def unstable_directions(fps: FixedPoints) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(point, mode, unit direction [D])`` for every unstable eigenvector; a complex vector contributes
    its real part (its imaginary part when the real part vanishes)."""
    points, modes, dirs = [], [], []
    for k in range(len(fps)):
        for m in range(int(fps.n_unstable[k])):
            v = fps.eigvecs[k, :, m]
            d = v.real if v.real.norm() > 1e-8 * v.abs().norm() else v.imag
            points.append(k)
            modes.append(m)
            dirs.append(d / d.norm())
    if not dirs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), fps.xstar.new_zeros(0, fps.n_state)
    return torch.tensor(points), torch.tensor(modes), torch.stack(dirs).to(fps.xstar.dtype)


@torch.no_grad()
def topology(model, fps: FixedPoints, *, epsilon: float = 1e-2, max_steps: int = 5000, settle_tol: float = 1e-10,
             match_tol: float = 1e-2, continuous: bool | None = None, check_every: int = 20,
             dt: float | None = None, state_first: bool | None = None) -> Topology:
    """Follow each unstable mode of each saddle of ``fps`` both ways with ``model``'s own dynamics and record
    the attractor reached. A discrete map is iterated; a continuous-time model is integrated by Euler steps
    of ``dt`` (in the model's time unit; default 0.1 / the largest |λ| of the points' spectra, a step that
    resolves the fastest mode of the linearisation)."""
    continuous = fps.continuous if continuous is None else continuous
    points, modes, dirs = unstable_directions(fps)
    if len(points) == 0:
        return Topology([], fps.xstar.new_zeros(0, fps.n_state), torch.zeros(0, dtype=torch.long))
    if continuous and dt is None:
        top = float(fps.eigvals.abs().max()) if fps.eigvals.numel() else 0.0
        dt = 0.1 / top if top > 0 else 1.0
    with dynamics_of(model, continuous, state_first=state_first, dt=dt) as (_, dyn):
        dtype = dyn.dtype or fps.xstar.dtype
        device = dyn.device or fps.xstar.device
        dirs = dirs.to(device=device, dtype=dtype)
        centre = fps.xstar[points].to(device=device, dtype=dtype)
        x = torch.cat([centre + epsilon * dirs, centre - epsilon * dirs])
        u = fps.inputs[points].to(device=device, dtype=dtype).repeat(2, 1)
        steps = torch.full((x.shape[0],), max_steps, dtype=torch.long)
        active = torch.arange(x.shape[0], device=device)
        for step in range(1, max_steps + 1):
            x[active] = dyn.advance(x[active], u[active])
            if step % check_every == 0 or step == max_steps:
                r = dyn.residual(x[active], u[active])
                settled = 0.5 * (r * r).sum(dim=1) < settle_tol
                steps[active[settled].cpu()] = step
                active = active[~settled]
                if active.numel() == 0:
                    break
    stable = fps.stable.nonzero()[:, 0].to(device)
    attractor = torch.full((x.shape[0],), -1, dtype=torch.long)
    if stable.numel():
        dist = torch.cdist(x, fps.xstar[stable].to(device=device, dtype=dtype))
        nearest = dist.argmin(dim=1)
        ok = dist.gather(1, nearest[:, None])[:, 0] <= match_tol
        attractor = torch.where(ok, stable[nearest], torch.full_like(nearest, -1)).cpu()
    n = len(points)
    edges = [(int(points[i % n]), int(modes[i % n]), 1 if i < n else -1, int(attractor[i])) for i in range(2 * n)]
    return Topology(edges, x.cpu(), steps)
