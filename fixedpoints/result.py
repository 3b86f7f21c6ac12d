"""``FixedPoints``: the points found and their linearisation, with indexing, concatenation, HDF5 files
and a PCA projection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

#: per-point fields, in file order; everything else is a scalar attribute
POINT_FIELDS = ("xstar", "inputs", "q", "F_xstar", "jacobians", "input_jacobians", "eigvals", "eigvecs",
                "n_unstable", "stable", "is_slow", "degenerate")

#: a point is degenerate when an eigenvalue lies this close to the stability boundary (|λ| = 1 in discrete
#: time, Re λ = 0 in continuous time): its index there is not determined by the linearisation
DEGENERATE_TOL = 1e-5


def degenerate_points(eigvals: torch.Tensor, continuous: bool, tol: float = DEGENERATE_TOL) -> torch.Tensor:
    """``[K]`` true where some eigenvalue lies within ``tol`` of the stability boundary."""
    if eigvals.numel() == 0:
        return torch.zeros(eigvals.shape[0], dtype=torch.bool, device=eigvals.device)
    gap = eigvals.real.abs() if continuous else (eigvals.abs() - 1).abs()
    return (gap < tol).any(dim=1)


@dataclass
class FixedPoints:
    """K points of a model with D state units and I inputs.

    ``xstar [K,D]`` positions, ``inputs [K,I]`` the static input each was found at, ``q [K]`` = ½‖r‖²,
    ``F_xstar [K,D]`` the map (or velocity) there, ``jacobians [K,D,D]`` ∂F/∂x, ``input_jacobians [K,D,I]``
    ∂F/∂u, ``eigvals [K,D]`` (complex, most unstable first), ``eigvecs [K,D,D]`` (columns),
    ``n_unstable [K]`` the index, ``stable [K]``, ``is_slow [K]`` (q above ``tol_q``: a slow point),
    ``degenerate [K]`` (an eigenvalue within ``DEGENERATE_TOL`` = 1e-5 of the unit circle, or of the imaginary
    axis in continuous time: the index, and stability, are not decided by the linearisation there;
    computed from ``eigvals`` when not given).
    """

    xstar: torch.Tensor
    inputs: torch.Tensor
    q: torch.Tensor
    F_xstar: torch.Tensor
    jacobians: torch.Tensor
    input_jacobians: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    n_unstable: torch.Tensor
    stable: torch.Tensor
    is_slow: torch.Tensor
    degenerate: torch.Tensor | None = None
    continuous: bool = False
    tol_q: float = 1e-12
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.degenerate is None:
            self.degenerate = degenerate_points(self.eigvals, self.continuous)

    # --- container -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.xstar.shape[0])

    @property
    def n_state(self) -> int:
        return int(self.xstar.shape[1])

    def __getitem__(self, index) -> FixedPoints:
        """A subset: an int, a slice, a boolean mask or a list/tensor of indices."""
        if isinstance(index, int):
            index = [index % max(len(self), 1)]
        if isinstance(index, list):
            index = torch.as_tensor(index, dtype=torch.long)
        if torch.is_tensor(index):
            index = index.to(self.xstar.device)
        picked = {name: getattr(self, name)[index] for name in POINT_FIELDS}
        return FixedPoints(**picked, continuous=self.continuous, tol_q=self.tol_q, info=dict(self.info))

    def to(self, device) -> FixedPoints:
        moved = {name: getattr(self, name).to(device) for name in POINT_FIELDS}
        return FixedPoints(**moved, continuous=self.continuous, tol_q=self.tol_q, info=dict(self.info))

    @staticmethod
    def concatenate(parts: list[FixedPoints]) -> FixedPoints:
        """All points of ``parts`` (same state width and time kind), in order."""
        if not parts:
            raise ValueError("concatenate needs at least one FixedPoints")
        if len({p.n_state for p in parts}) > 1 or len({p.continuous for p in parts}) > 1:
            raise ValueError("can only concatenate FixedPoints of the same state width and time kind")
        device = parts[0].xstar.device
        joined = {name: torch.cat([getattr(p, name).to(device) for p in parts]) for name in POINT_FIELDS}
        return FixedPoints(**joined, continuous=parts[0].continuous, tol_q=max(p.tol_q for p in parts),
                           info={"concatenated": len(parts)})

    def by_index(self) -> dict[int, int]:
        """How many points have each index (number of unstable directions)."""
        values, counts = torch.unique(self.n_unstable.cpu(), return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def __repr__(self) -> str:
        kind = "continuous" if self.continuous else "discrete"
        max_q = float(self.q.max()) if len(self) else 0.0
        n_deg = int(self.degenerate.sum())
        degenerate = f", {n_deg} degenerate" if n_deg else ""
        return (f"FixedPoints({len(self)} points, D={self.n_state}, {kind}, by index {self.by_index()}, "
                f"max q {max_q:.2e}{degenerate})")

    # --- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, group: str = "/") -> None:
        """Write to an HDF5 file (a temporary name, then renamed: a crash never leaves half a file)."""
        import h5py

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            g = f.require_group(group)
            for name in POINT_FIELDS:
                g.create_dataset(name, data=getattr(self, name).detach().cpu().numpy())
            g.attrs["continuous"] = self.continuous
            g.attrs["tol_q"] = self.tol_q
            g.attrs["shapes"] = "xstar [K,D], inputs [K,I], jacobians [K,D,D], eigvals [K,D] complex"
            for key, value in self.info.items():
                if isinstance(value, (int, float, str, bool)):
                    g.attrs[f"info_{key}"] = value
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, group: str = "/") -> FixedPoints:
        import h5py

        with h5py.File(path, "r") as f:
            g = f[group]
            data = {name: torch.from_numpy(np.asarray(g[name])) for name in POINT_FIELDS if name in g}
            info = {k[5:]: (v.item() if hasattr(v, "item") else v)
                    for k, v in g.attrs.items() if k.startswith("info_")}
            return cls(**data, continuous=bool(g.attrs["continuous"]), tol_q=float(g.attrs["tol_q"]), info=info)

    # --- projection ------------------------------------------------------------------------------
    def pca(self, n_components: int = 2, reference: torch.Tensor | None = None) -> PCA:
        """A PCA basis fitted on ``reference`` states (e.g. trajectories ``[..., D]``) or on the points."""
        data = self.xstar if reference is None else reference
        return PCA.fit(data, n_components)

    def project(self, pca: PCA | None = None, n_components: int = 2) -> torch.Tensor:
        """The points in PCA coordinates ``[K, n_components]``."""
        pca = pca if pca is not None else self.pca(n_components)
        return pca.transform(self.xstar)


@dataclass
class PCA:
    """Principal components: ``transform(x) = (x - mean) @ components.T``."""

    mean: torch.Tensor
    components: torch.Tensor  # [n_components, D]
    explained_variance_ratio: torch.Tensor

    @classmethod
    def fit(cls, data: torch.Tensor, n_components: int) -> PCA:
        flat = data.detach().reshape(-1, data.shape[-1]).to(torch.float64).cpu()
        flat = flat[torch.isfinite(flat).all(dim=1)]  # NaN rows mark states left out (e.g. during input pulses)
        mean = flat.mean(dim=0)
        _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
        var = s**2
        k = min(n_components, vh.shape[0])
        ratio = var[:k] / var.sum().clamp_min(1e-300)
        return cls(mean, vh[:k], ratio)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().to(torch.float64).cpu()
        return (flat - self.mean) @ self.components.T

    def transform_directions(self, v: torch.Tensor) -> torch.Tensor:
        """Project directions (no centring)."""
        return v.detach().to(torch.float64).cpu() @ self.components.T


