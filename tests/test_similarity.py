"""fixedpoints.similarity against known answers: a rotated and scaled copy is identical (CCA = CKA = 1,
Procrustes = 0), independent states sit near the methods' null values, DSA sees linear systems with the same
eigenvalues in different bases as the same and different eigenvalues as different; bad input gets one line."""

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from fixedpoints import similarity

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 40, 8)).cumsum(axis=1)  # [trials, steps, units], correlated in time


def linear_system(a: np.ndarray, seed: int, trials: int = 30, steps: int = 60, noise: float = 0.05) -> np.ndarray:
    """States of x[t+1] = a x[t] + noise, [trials, steps, D]; the same starts (trials) for every ``seed``, which
    draws the noise (models are compared on the same trials)."""
    x, out = np.random.default_rng(123).standard_normal((trials, a.shape[0])), []
    gen = np.random.default_rng(seed)
    for _ in range(steps):
        out.append(x)
        x = x @ a.T + noise * gen.standard_normal(x.shape)
    return np.stack(out, axis=1)


def rotation_system(radius: float = 0.95, angle: float = 0.2, third: float = 0.8) -> np.ndarray:
    c, s = radius * np.cos(angle), radius * np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, third]])


def test_rotated_scaled_copy_is_identical():
    Y = 3.0 * X @ ortho_group.rvs(8, random_state=1) + 5.0  # orthogonal map, scale, offset
    assert similarity(X, Y, "cca") == pytest.approx(1.0, abs=1e-6)
    assert similarity(X, Y, "svcca") == pytest.approx(1.0, abs=1e-6)
    assert similarity(X, Y, "cka") == pytest.approx(1.0, abs=1e-6)
    assert similarity(X, Y, "procrustes") == pytest.approx(0.0, abs=1e-6)
    assert similarity(X, Y, "dsa") == pytest.approx(0.0, abs=1e-6)
    # a tensor works as an array does, and more units on one side is fine (CCA, CKA need no common dimension)
    wider = torch.as_tensor(np.concatenate([Y, np.zeros_like(Y[..., :3])], axis=-1))
    assert similarity(torch.as_tensor(X), wider, "cka") == pytest.approx(1.0, abs=1e-6)


def test_independent_states_sit_near_the_null_values():
    Y = RNG.standard_normal((12, 40, 8))
    # Measured nulls for 480 samples of 8 units each: mean canonical correlation 0.11, CKA 0.015 (finite
    # samples always correlate a little: ~sqrt(D/n) and ~D/n); an identical pair gives 1.
    assert similarity(X, Y, "cca") < 0.2
    assert similarity(X, Y, "cka") < 0.1
    assert similarity(X, Y, "procrustes") > 0.5


def test_dsa_same_eigenvalues_other_basis_near_zero_other_eigenvalues_not():
    a = rotation_system()
    basis = np.random.default_rng(3).standard_normal((3, 3))  # any invertible change of basis, not orthogonal
    x = linear_system(a, seed=0)
    same = similarity(x, x @ basis.T, "dsa")
    same_other_noise = similarity(x, linear_system(a, seed=1) @ basis.T, "dsa")
    slower = similarity(x, linear_system(rotation_system(0.6, 0.2, 0.5), seed=2), "dsa")
    other_rotation = similarity(x, linear_system(rotation_system(0.95, 0.8, 0.8), seed=2), "dsa")
    assert same < 1e-6
    assert same_other_noise < 0.2  # only the noise realisation differs
    assert slower > 3 * same_other_noise
    assert other_rotation > 3 * same_other_noise


@pytest.mark.parametrize(
    ("y", "options", "message"),
    [
        (X[:5], {}, "same trials and steps"),
        (X[:, :30], {}, "same trials and steps"),
        (np.where(X > 3, np.nan, X), {}, "non-finite"),
        (X, {"method": "nope"}, "unknown similarity method"),
        (X[..., :3], {"method": "procrustes", "n_components": 5}, "common PCA dimension"),
        (X[0], {}, "must be [trials, steps, units]"),
        (np.zeros_like(X), {"method": "cca"}, "constant"),
    ],
)
def test_bad_input_gets_one_clear_line(y, options, message):
    method = options.pop("method", "cka")
    with pytest.raises(ValueError, match=None) as err:
        similarity(X, y, method, **options)
    text = str(err.value)
    assert message in text and "\n" not in text


def _wells(dim: int):
    """ẋ₀ = x₀ − x₀³ (stable points ±1, a saddle at 0) and, for dim 2, ẋ₁ = −x₁: the same topology."""
    def f(x, u):
        first = x[:, :1] - x[:, :1] ** 3
        return torch.cat([first, -x[:, 1:]], dim=1)
    return f


def _points_and_topology(f, dim: int):
    from fixedpoints import find, topology

    states = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)[:, None].repeat(1, dim)
    fps = find(f, states, torch.zeros(31, 1, dtype=torch.float64), continuous=True, n_starts=None, noise=0.0)
    return fps, topology(f, fps, continuous=True)


def test_compare_topology_known_graphs():
    from fixedpoints import compare_topology

    one, two = _points_and_topology(_wells(1), 1), _points_and_topology(_wells(2), 2)
    single = _points_and_topology(lambda x, u: -x, 1)
    same = compare_topology(one[0], two[0], one[1], two[1])
    assert same["isomorphic"] and same["graph_distance"] == 0.0 and same["same_counts"]
    assert same["by_index"][0] == {"0": 2, "1": 1} and same["n_edges"] == [2, 2]  # saddle -> both attractors
    other = compare_topology(one[0], single[0], one[1], single[1])
    # from {saddle -> A, saddle -> B} to {A}: delete the saddle, one attractor and both edges
    assert not other["isomorphic"] and other["graph_distance"] == 4.0
    with pytest.raises(ValueError, match="FixedPoints"):
        compare_topology(one[0], "points")
