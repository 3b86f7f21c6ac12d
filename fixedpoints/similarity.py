"""How alike two models' state trajectories are, on the same trials: one function, five methods.

``similarity(X, Y, method)`` takes ``X [trials, steps, D1]`` and ``Y [trials, steps, D2]`` (numpy arrays or
tensors; the states of two models driven by the SAME inputs) and returns one float:

=============  =========================================================================  ==========  ==============
method         what                                                                       range       kind
=============  =========================================================================  ==========  ==============
``cca``        mean canonical correlation of the centred states (each reduced to its       [0, 1]      similarity
               numerical rank first)
``svcca``      SVCCA (Raghu et al. 2017): each model's PCA to 99 % of its variance, then   [0, 1]      similarity
               the mean canonical correlation
``cka``        linear CKA (Kornblith et al. 2019) of the centred states                    [0, 1]      similarity
``procrustes`` Procrustes disparity (scipy's convention): both reduced to a common PCA     [0, 1]      distance
               dimension, centred and scaled to unit norm, ``1 − (Σσ)²`` with σ the
               singular values of ``X̃ᵀỸ``
``dsa``        Dynamical Similarity Analysis (Ostrow et al. 2023): per model a DMD        [0, ‖A‖+‖B‖] distance
               operator of delay-embedded, whitened PCA states, then
               ``min_{C ∈ O(r)} ‖A − C B Cᵀ‖_F``
=============  =========================================================================  ==========  ==============

Null values: for independent X and Y the mean canonical correlation is not 0 but about
``sqrt(min(D1, D2) / n_samples)``-ish (finite samples always correlate a little); CKA's null is about
``D1·D2 / n_samples``-ish (see tests/test_similarity.py for measured values).

CCA is computed in closed form from the orthonormal bases of the two centred data matrices (QR, then the
singular values of ``QxᵀQy``, Björck & Golub 1973), not with scikit-learn's iterative ``CCA`` (NIPALS, one
component at a time, converged only to its ``tol``): the known answer CCA = 1 must hold to 1e-6. PCA is
scikit-learn's.

DSA: the ``dsa-metric`` package needs pot, omegaconf, pydmd, optht, derivative and prettytable for one
distance, so this is our own, following the paper: centre, PCA to a common dimension ``d`` (``n_pcs``, or
the smaller model's numerical rank) and whiten (so any invertible linear change of basis becomes orthogonal
and leaves the distance at 0; the price: the weakest of the ``d`` components weigh as much as the
strongest), stack ``n_delays`` delayed copies (Hankel),
project on the Hankel's top ``rank`` singular vectors and fit ``V[t+1] = A V[t]`` by least squares (DMD).
The orthogonal ``C`` is found by L-BFGS on ``‖A − C B Cᵀ‖²`` over ``C = C₀·expm(S − Sᵀ)``, started from
the Procrustes rotation between the two models' own reduced coordinates (exact when they differ by a
rotation) and from random rotations and reflections; the best is kept.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

METHODS = ("cca", "svcca", "cka", "procrustes", "dsa")
#: ``method -> True`` when larger means more alike
HIGHER_IS_SIMILAR = {"cca": True, "svcca": True, "cka": True, "procrustes": False, "dsa": False}


def _as_array(x, name: str) -> np.ndarray:
    """float64 numpy copy of an array or tensor (a tensor is detached and moved to the CPU first)."""
    if torch.is_tensor(x):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        out = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array [trials, steps, units], got {type(x).__name__}") from err
    return out


def check_pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 ``[trials, steps, D]``; one clear ``ValueError`` for shapes or values that cannot be
    compared."""
    X, Y = _as_array(X, "X"), _as_array(Y, "Y")
    for name, a in (("X", X), ("Y", Y)):
        if a.ndim != 3:
            raise ValueError(f"{name} must be [trials, steps, units], got shape {tuple(a.shape)}")
        if min(a.shape) < 1:
            raise ValueError(f"{name} is empty: shape {tuple(a.shape)}")
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            raise ValueError(f"{name} has {bad} non-finite values (NaN/inf): states must be finite")
    if X.shape[:2] != Y.shape[:2]:
        raise ValueError(
            f"X and Y must hold the same trials and steps: X has [trials, steps] = {list(X.shape[:2])}, "
            f"Y has {list(Y.shape[:2])}")
    return X, Y


def _flat_centred(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(-1, a.shape[-1])
    return flat - flat.mean(axis=0)


def _rank_basis(flat: np.ndarray, rel_tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis ``[n, k]`` of the column space of centred ``flat`` (``k`` its numerical rank)."""
    u, s, _ = np.linalg.svd(flat, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return u[:, :0]
    return u[:, s > rel_tol * s[0]]


def canonical_correlations(X, Y) -> np.ndarray:
    """All canonical correlations of two centred ``[n, D]`` data matrices, largest first."""
    qx, qy = _rank_basis(X), _rank_basis(Y)
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        raise ValueError("a model's states are constant over all trials and steps: no correlation is defined")
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def _pca_scores(flat: np.ndarray, n_components) -> np.ndarray:
    """scikit-learn PCA scores of centred ``flat``; ``n_components`` an int or a variance fraction."""
    pca = PCA(n_components=n_components, svd_solver="full")
    return pca.fit_transform(flat)


def _numerical_rank(flat: np.ndarray, rel_tol: float = 1e-9) -> int:
    """Components of centred ``flat`` holding more than ``rel_tol`` of its largest component's variance
    (a rule that a change of basis cannot move, unlike a 99 %-variance cut)."""
    var = np.linalg.svd(flat, compute_uv=False) ** 2
    return 0 if var.size == 0 or var[0] == 0 else int((var > rel_tol * var[0]).sum())


def cca(X, Y) -> float:
    """Mean canonical correlation, [0, 1], 1 = identical up to an invertible linear map."""
    return float(canonical_correlations(_flat_centred(X), _flat_centred(Y)).mean())


def svcca_basis(X, variance: float = 0.99, name: str = "X") -> np.ndarray:
    """One model's half of SVCCA: an orthonormal basis ``[n, k]`` of its PCA scores to ``variance`` of its
    variance. ``svcca(X, Y) == svcca_from_bases(svcca_basis(X), svcca_basis(Y))``; computing each model's basis
    once makes every pair of a distance matrix one ``[k, k']`` product (``pipeline.sweep`` does)."""
    f = _flat_centred(_as_array(X, name))
    if not f.any():
        raise ValueError(f"{name}'s states are constant over all trials and steps: no correlation is defined")
    return _rank_basis(_pca_scores(f, variance))


def svcca_from_bases(qx: np.ndarray, qy: np.ndarray) -> float:
    """Mean canonical correlation of two models given their ``svcca_basis`` (the same trials and steps)."""
    if qx.shape[0] != qy.shape[0]:
        raise ValueError(f"the bases hold {qx.shape[0]} and {qy.shape[0]} samples: not the same trials and steps")
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        raise ValueError("a model's states are constant over all trials and steps: no correlation is defined")
    return float(np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0).mean())


def svcca(X, Y, variance: float = 0.99) -> float:
    """SVCCA: PCA of each model to ``variance`` of its variance, then the mean canonical correlation."""
    return svcca_from_bases(svcca_basis(X, variance, "X"), svcca_basis(Y, variance, "Y"))


def cka(X, Y) -> float:
    """Linear CKA: ``‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)`` on centred states, [0, 1], 1 = identical up to an
    orthogonal map and a scale."""
    fx, fy = _flat_centred(X), _flat_centred(Y)
    den = np.linalg.norm(fx.T @ fx) * np.linalg.norm(fy.T @ fy)
    if den == 0:
        raise ValueError("a model's states are constant over all trials and steps: CKA is not defined")
    return float(np.linalg.norm(fy.T @ fx) ** 2 / den)


def procrustes(X, Y, n_components: int | None = None) -> float:
    """Procrustes disparity ``1 − (Σσ)²`` in [0, 1] (0 = identical up to rotation, reflection, translation
    and scale) of the two models' scores on their first ``n_components`` principal components (each its own
    PCA; ``None``: ``min(10, D1, D2)``)."""
    d_min = min(X.shape[-1], Y.shape[-1])
    k = min(10, d_min) if n_components is None else int(n_components)
    if not 1 <= k <= d_min:
        raise ValueError(
            f"the common PCA dimension n_components={n_components} must be in [1, {d_min}] "
            f"(X has {X.shape[-1]} units, Y has {Y.shape[-1]})")
    zx, zy = _pca_scores(_flat_centred(X), k), _pca_scores(_flat_centred(Y), k)
    nx, ny = np.linalg.norm(zx), np.linalg.norm(zy)
    if nx == 0 or ny == 0:
        raise ValueError("a model's states are constant over all trials and steps: Procrustes is not defined")
    s = np.linalg.svd((zx / nx).T @ (zy / ny), compute_uv=False)
    return float(np.clip(1.0 - s.sum() ** 2, 0.0, 1.0))


# ----------------------------------------------------------------------------------------------------- DSA


def _whitened_pcs(a: np.ndarray, d: int) -> np.ndarray:
    """``[trials, steps, d]`` PCA scores of ``a`` with unit variance per component."""
    flat = _flat_centred(a)
    z = _pca_scores(flat, d)
    z = z / z.std(axis=0).clip(min=1e-300)
    return z.reshape(a.shape[0], a.shape[1], d)


def _hankel(z: np.ndarray, n_delays: int) -> np.ndarray:
    """Delay embedding ``[trials, steps − n_delays + 1, n_delays·d]``: row t holds z[t], z[t+1], …"""
    steps = z.shape[1] - n_delays + 1
    return np.concatenate([z[:, k:k + steps] for k in range(n_delays)], axis=-1)


def dmd_operator(z: np.ndarray, n_delays: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """DMD operator ``A [rank, rank]`` of delay-embedded ``z [trials, steps, d]`` and the reduced
    coordinates ``V [trials, steps', rank]`` it acts on (least squares ``V[t+1] ≈ A V[t]``, over all trials)."""
    h = _hankel(z, n_delays)
    flat = h.reshape(-1, h.shape[-1])
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    v = h @ vt[:rank].T
    prev = v[:, :-1].reshape(-1, rank)
    nxt = v[:, 1:].reshape(-1, rank)
    sol, *_ = np.linalg.lstsq(prev, nxt, rcond=None)  # prev @ sol ≈ nxt, so A = solᵀ
    return sol.T, v


def _orthogonal_procrustes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal ``C`` minimising ``‖a − b Cᵀ‖`` for rows of samples (so that ``a_t ≈ C b_t``)."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def operator_distance(A: np.ndarray, B: np.ndarray, C0: np.ndarray | None = None, n_starts: int = 2,
                      max_iter: int = 100, seed: int = 0) -> float:
    """``min_{C ∈ O(r)} ‖A − C B Cᵀ‖_F`` (Ostrow et al. 2023, eq. 3): L-BFGS over ``C = C₀·expm(S − Sᵀ)``
    from ``C0`` (identity when not given) and from ``n_starts`` random orthogonal matrices (every other one a
    reflection, the other component of O(r)); the smallest distance found is returned."""
    r = A.shape[0]
    gen = torch.Generator().manual_seed(seed)
    starts = [torch.eye(r, dtype=torch.float64) if C0 is None else torch.as_tensor(C0, dtype=torch.float64)]
    for k in range(n_starts):
        q, _ = torch.linalg.qr(torch.randn(r, r, generator=gen, dtype=torch.float64))
        if k % 2 and r > 1:
            q = q * torch.tensor([-1.0] + [1.0] * (r - 1), dtype=torch.float64)
        starts.append(q)
    a = torch.as_tensor(A, dtype=torch.float64)
    b = torch.as_tensor(B, dtype=torch.float64)
    best = float("inf")
    with torch.enable_grad():
        for c0 in starts:
            s = torch.zeros(r, r, dtype=torch.float64, requires_grad=True)

            def loss(s=s, c0=c0):
                c = c0 @ torch.linalg.matrix_exp(s - s.T)
                return (a - c @ b @ c.T).pow(2).sum()

            opt = torch.optim.LBFGS([s], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12, tolerance_change=1e-15,
                                    line_search_fn="strong_wolfe")

            def closure(opt=opt, loss=loss):
                opt.zero_grad()
                value = loss()
                value.backward()
                return value

            opt.step(closure)
            with torch.no_grad():
                best = min(best, float(loss()))
    return best ** 0.5


def dsa(X, Y, n_delays: int = 5, rank: int = 10, n_pcs: int = 10, seed: int = 0) -> float:
    """DSA distance (see the module docstring); 0 = the same linear dynamics up to a change of basis."""
    if n_delays < 1 or rank < 1 or n_pcs < 1:
        raise ValueError(f"DSA needs n_delays, rank and n_pcs >= 1, got {n_delays}, {rank}, {n_pcs}")
    if X.shape[1] < n_delays + 2:
        raise ValueError(f"DSA with n_delays={n_delays} needs at least {n_delays + 2} steps, got {X.shape[1]}")
    fx, fy = _flat_centred(X), _flat_centred(Y)
    d = min(n_pcs, _numerical_rank(fx), _numerical_rank(fy))
    if d == 0:
        raise ValueError("a model's states are constant over all trials and steps: DSA is not defined")
    r = min(rank, d * n_delays)
    a, va = dmd_operator(_whitened_pcs(X, d), n_delays, r)
    b, vb = dmd_operator(_whitened_pcs(Y, d), n_delays, r)
    c0 = _orthogonal_procrustes(va.reshape(-1, r), vb.reshape(-1, r))
    return operator_distance(a, b, c0, seed=seed)


_FUNCTIONS = {"cca": cca, "svcca": svcca, "cka": cka, "procrustes": procrustes, "dsa": dsa}


def similarity(X, Y, method: str, **options) -> float:
    """Similarity (``cca``, ``svcca``, ``cka``: larger = more alike) or distance (``procrustes``, ``dsa``:
    smaller = more alike) of two models' states ``[trials, steps, D]`` on the same trials; the module
    docstring gives each method's range. ``options`` go to the method (e.g. ``n_components`` for
    Procrustes, ``n_delays``/``rank`` for DSA)."""
    if method not in _FUNCTIONS:
        raise ValueError(f"unknown similarity method {method!r}: use one of {', '.join(METHODS)}")
    X, Y = check_pair(X, Y)
    return _FUNCTIONS[method](X, Y, **options)
