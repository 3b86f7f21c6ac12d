"""Golden trajectory of the published LIF equations, the independent anchor of tests/test_lif_reference.py.

Provenance: Kim, Li & Sejnowski 2019, reference code rkim35/spikeRNN, ``spiking/LIF_network_fnc.m`` (commit
a7861edff63afa3e6dc923f0478783d70cd0e951), read as equations and written out again below as one plain NumPy
loop over LIF steps in float64, in the reference's own units (seconds, spikes/s) and its own order of updates
within a step: voltage (gated while refractory), threshold, ``tlast``, current filter, rate filter,
reset. Nothing of ratespike is imported.

Three settings differ from the reference function, each to make a deterministic, comparable run:
* the voltage noise ``randn/10`` is off (the reference also adds it during refractoriness, ratespike does not:
  spiking/lif.py explains why);
* the initial voltages are given (the reference draws ``vreset + rand*(30 - vreset)``) and no unit starts
  refractory (the reference's ``tlast = 0`` blocks every unit for the first 2 ms);
* input column ``k`` is applied during LIF steps ``100k+1 .. 100k+100`` (one rate step each), where the
  reference indexes ``ext_stim(:, round(i/100)+1)`` and so switches half a rate step early;
* refractoriness is compared in whole steps, ``i > i_last + tref/dt``: the reference compares times in floating
  point, ``dt*i > tlast + tref``, and roundoff ends its 2 ms one step early after some spikes (39 blocked steps
  instead of 40 after unit 4's spikes at steps 366 and 419 of this network).

Run ``python tests/data/lif_reference/make_golden.py`` to rewrite ``golden.npz`` (it is committed; the test
never runs this script).
"""

from pathlib import Path

import numpy as np


def reference_lif(w, w_in, u, td_s, v0, dt=0.00005, tr=0.002, tm=0.010, tref=0.002, vreset=-65.0, vpeak=-40.0):
    """The reference loop; ``w [N,N]`` already divided by the scaling factor, ``u [I,T]`` one column per rate
    step of 100 LIF steps. Returns spike steps and units, and the filtered rates ``r`` at each rate step's end."""
    n = w.shape[0]
    ext_stim = w_in @ u
    nt = 100 * u.shape[1]
    ipsc, h, r, hr = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    v = v0.astype(np.float64).copy()
    ilast = np.full(n, -10**9)  # long before the start: nobody refractory (see the module docstring)
    bias = vpeak
    spike_steps, spike_units, rates = [], [], []
    for i in range(1, nt + 1):
        current = ipsc + bias + ext_stim[:, (i - 1) // 100]
        dv = (i > ilast + round(tref / dt)) * (-v + current) / tm
        v = v + dt * dv
        fired = v >= vpeak
        jd = w[:, fired].sum(axis=1) if fired.any() else np.zeros(n)
        ilast = np.where(fired, i, ilast)
        ipsc = ipsc * np.exp(-dt / td_s) + h * dt
        h = h * np.exp(-dt / tr) + jd * fired.any() / (tr * td_s)
        r = r * np.exp(-dt / td_s) + hr * dt
        hr = hr * np.exp(-dt / tr) + fired / (tr * td_s)
        for unit in np.flatnonzero(fired):
            spike_steps.append(i)
            spike_units.append(unit)
        v = v + (vreset - v) * fired
        if i % 100 == 0:
            rates.append(r.copy())
    return np.array(spike_steps), np.array(spike_units), np.array(rates)


def network(seed: int = 7):
    rng = np.random.default_rng(seed)
    n, n_in, n_steps = 8, 2, 12
    w = rng.normal(0.0, 20.0, (n, n)) * (rng.random((n, n)) < 0.5)  # already divided by λ
    w_in = rng.normal(0.0, 1.0, (n, n_in))
    u = np.repeat(rng.random((n_in, n_steps // 3)) * 6.0, 3, axis=1)  # input held for 3 rate steps at a time
    td_ms = rng.uniform(20.0, 100.0, n)
    v0 = rng.uniform(-65.0, -40.0, n)
    return w, w_in, u, td_ms, v0


if __name__ == "__main__":
    w, w_in, u, td_ms, v0 = network()
    steps, units, rates = reference_lif(w, w_in, u, td_ms / 1000.0, v0)
    out = Path(__file__).with_name("golden.npz")
    np.savez(out, w=w, w_in=w_in, u=u, td_ms=td_ms, v0=v0, spike_steps=steps, spike_units=units, rates=rates)
    print(f"{out}: {len(steps)} spikes over {100 * u.shape[1]} LIF steps, {w.shape[0]} units")
