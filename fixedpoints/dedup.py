"""Outlier exclusion and deduplication of candidate points, vectorised on the points' device.

Golub & Sussillo's FixedPointFinder drops candidates farther from the starts' centroid than 10× the
starts' mean distance from it, and merges candidates closer than ``tol_unique`` (1e-3) keeping one. Their
merge is an O(n²) Python loop; here it is a pairwise-distance matrix and a vectorised fixed-point
iteration of the greedy rule "keep a point unless a kept point of lower q lies within tol".
"""

from __future__ import annotations

import torch


def outlier_mask(points: torch.Tensor, starts: torch.Tensor, distance_scale: float = 10.0) -> torch.Tensor:
    """True for points within ``distance_scale`` × the mean distance of the starts from their centroid."""
    centroid = starts.mean(dim=0)
    typical = (starts - centroid).norm(dim=1).mean().clamp_min(torch.finfo(starts.dtype).tiny)
    return (points - centroid).norm(dim=1) <= distance_scale * typical


def unique_lowest_q(points: torch.Tensor, q: torch.Tensor, tol_unique: float = 1e-3) -> torch.Tensor:
    """Indices of the points kept, lowest q first: a point is dropped when a kept point of lower q lies
    within ``tol_unique`` (Euclidean). Same answer as the sequential greedy pass, without a Python loop
    over points (the loop below runs once per link of the longest chain of near neighbours, usually 1-3)."""
    n = points.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    order = torch.argsort(q)
    ordered = points[order]
    near = torch.cdist(ordered, ordered, compute_mode="donot_use_mm_for_euclid_dist") <= tol_unique
    near &= torch.ones(n, n, dtype=torch.bool, device=points.device).tril(diagonal=-1)  # only lower-q neighbours
    keep = torch.ones(n, dtype=torch.bool, device=points.device)
    for _ in range(n):
        updated = ~(near & keep[None, :]).any(dim=1)
        if torch.equal(updated, keep):
            break
        keep = updated
    return order[keep]
