"""Fixed points followed across a path of static inputs (natural-parameter continuation).

Each branch starts at a point of ``fps`` found at ``input_path[0]``. At every next input the previous
solution, extrapolated linearly from the last two, is polished by the damped Newton phase of the solver
(Allgower & Georg 2003, ch. 2: predictor–corrector). A branch is *lost* where the corrector no longer
reaches ``tol_q`` (typically at a saddle-node bifurcation, where two branches meet and vanish); a *change*
is recorded wherever a branch's index (number of unstable directions) differs from the previous step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .adapters import dynamics_of
from .linear import count_unstable, eigen, jacobians
from .result import FixedPoints
from .solver import SolverConfig, lm_phase


@dataclass
class Continuation:
    """``xstar [S,K,D]`` (NaN once lost), ``q [S,K]``, ``n_unstable [S,K]`` (−1 once lost) and
    ``eigvals [S,K,D]`` along ``inputs [S,I]``; ``changes`` lists ``{"step", "branch", "input",
    "from_index", "to_index"}`` (``to_index`` −1: the branch was lost there)."""

    inputs: torch.Tensor
    xstar: torch.Tensor
    q: torch.Tensor
    n_unstable: torch.Tensor
    eigvals: torch.Tensor
    changes: list[dict] = field(default_factory=list)


def continuation(model, fps: FixedPoints, input_path, *, tol_q: float | None = None,
                 solver: SolverConfig | None = None, continuous: bool | None = None) -> Continuation:
    """Follow every point of ``fps`` along ``input_path [S, I]`` (the first row being the input ``fps`` was
    found at) and mark where stability changes."""
    continuous = fps.continuous if continuous is None else continuous
    tol_q = fps.tol_q if tol_q is None else tol_q
    cfg = solver if solver is not None else SolverConfig(tol_q=tol_q, merge_tol=0.0)
    cfg = SolverConfig(**{**cfg.__dict__, "tol_q": tol_q, "merge_tol": 0.0})
    path = torch.as_tensor(input_path)
    if path.ndim != 2 or path.shape[1] != fps.inputs.shape[1]:
        raise ValueError(f"input_path must be [S, {fps.inputs.shape[1]}], got {list(path.shape)}")
    n_steps, n_branches, d = path.shape[0], len(fps), fps.n_state
    with dynamics_of(model, continuous) as (fast, precise):
        dtype = precise.dtype or fps.xstar.dtype
        device = precise.device or fps.xstar.device
        path = path.to(device=device, dtype=dtype)
        xs = torch.full((n_steps, n_branches, d), float("nan"), dtype=dtype, device=device)
        qs = torch.full((n_steps, n_branches), float("nan"), dtype=dtype, device=device)
        index = torch.full((n_steps, n_branches), -1, dtype=torch.long, device=device)
        vals = torch.full((n_steps, n_branches, d), float("nan"), dtype=torch.complex128, device=device)
        x = fps.xstar.to(device=device, dtype=dtype)
        previous = x.clone()
        alive = torch.ones(n_branches, dtype=torch.bool, device=device)
        changes: list[dict] = []
        for s in range(n_steps):
            u = path[s].expand(n_branches, -1)
            guess = x + (x - previous) if s > 1 else x
            idx = alive.nonzero()[:, 0]
            if idx.numel() == 0:
                break
            solved, q, _ = lm_phase(precise, guess[idx], u[idx], cfg, jacobian_dyn=precise)
            ok = torch.isfinite(q) & (q <= tol_q)
            _, jac, _ = jacobians(precise, solved, u[idx])
            ev, _ = eigen(jac, precise.continuous)
            new_index = count_unstable(ev, precise.continuous)
            for j, b in enumerate(idx.tolist()):
                before = int(index[s - 1, b]) if s > 0 else int(new_index[j])
                now = int(new_index[j]) if ok[j] else -1
                if s > 0 and now != before:
                    changes.append({"step": s, "branch": b, "input": path[s].tolist(), "from_index": before,
                                    "to_index": now})
            keep = idx[ok]
            xs[s, keep], qs[s, keep] = solved[ok], q[ok]
            index[s, keep] = new_index[ok]
            vals[s, keep] = ev[ok].to(torch.complex128)
            previous, x = x.clone(), x.clone()
            x[keep] = solved[ok]
            alive[idx[~ok]] = False
    return Continuation(path.cpu(), xs.cpu(), qs.cpu(), index.cpu(), vals.cpu(), changes)
