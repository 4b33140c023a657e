"""The time-domain layer takes the system: a toy 2-mode LinearSystem (d = 4) through the public simulation API.

Two detuned oscillators (each quadrature damped at γ_j towards its bath of occupation n_j) coupled by a beam
splitter g(x_a x_b + p_a p_b). Estimates are checked against an independent reference (scipy's Lyapunov and
discrete Lyapunov solvers, the moment solution V(t) = e^{At}(V0 − V)e^{Aᵀt} + V) by z-scores with the
estimators' own errors, Bonferroni-corrected over the d(d+1)/2 = 10 independent entries (family-wise 1e-3).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from sde_com.errors import UserError
from sde_com.physics import system as system_module
from sde_com.physics.resonator.system import SpinningResonator, device_of
from sde_com.physics.system import Branch, LinearSystem, get_system, register_system
from sde_com.simulation.simulate import SimulationSettings, point_model, simulate
from sde_com.spec import Key

FAMILY_ALPHA = 1e-3
N_ENTRIES = 10  # d(d+1)/2 independent entries of a symmetric 4 × 4 covariance
OMEGA_REF = 2.0e6  # rad/s: the toy's reference rate (its mode a frequency)


def z_threshold(n_entries: int, n_trajectories: int) -> float:
    """Two-sided Bonferroni bound on max |t| over n_entries Student-t(n − 1) statistics, family-wise α."""
    return float(scipy.stats.t.ppf(1 - FAMILY_ALPHA / (2 * n_entries), df=n_trajectories - 1))


def _key(name: str, default: float, doc: str) -> Key:
    return Key(name, "number", doc, "1", default, minimum=0.0, forms=("list",))


class ThermalPair(LinearSystem):
    """Two damped oscillators a, b at ω_a = ω_ref, ω_b, beam-splitter coupled at g, baths at n_a, n_b."""

    name = "toy_thermal_pair"
    modes = ("a", "b")
    quadratures = ("xa", "pa", "xb", "pb")
    parameters = MappingProxyType({k.name: k for k in (
        _key("omega_b", 1.3, "ω_b/ω_ref"), _key("gamma_a", 0.2, "γ_a/ω_ref"), _key("gamma_b", 0.1, "γ_b/ω_ref"),
        _key("g", 0.15, "g/ω_ref"), _key("n_a", 2.0, "bath occupation of a"), _key("n_b", 0.5, "of b"))})

    def reference_rate(self, params):
        return OMEGA_REF

    def branches(self, params):
        p = self.resolve(params)
        wb, ga, gb, g = p["omega_b"], p["gamma_a"], p["gamma_b"], p["g"]
        A = np.array([[-ga, 1.0, 0.0, g], [-1.0, -ga, -g, 0.0], [0.0, g, -gb, wb], [-g, 0.0, -wb, -gb]])
        D = np.diag([ga * (2 * p["n_a"] + 1)] * 2 + [gb * (2 * p["n_b"] + 1)] * 2)
        return [Branch(0, MappingProxyType({}), A * OMEGA_REF, D * OMEGA_REF)]

    def thermal_covariance(self, params):
        p = self.resolve(params)
        return np.diag([p["n_a"] + 0.5] * 2 + [p["n_b"] + 0.5] * 2)


class NoThermalState(ThermalPair):
    name = "toy_no_thermal_state"
    thermal_covariance = LinearSystem.thermal_covariance


@pytest.fixture(scope="module")
def toy():
    register_system(ThermalPair)
    yield get_system(ThermalPair.name)
    system_module._REGISTRY.pop(ThermalPair.name, None)


def _drift_diffusion(system, params=None):
    b = system.branches(system.resolve(params))[0]
    return b.drift / OMEGA_REF, b.diffusion / OMEGA_REF


def _z(ds, reference):
    """(cov_sim − reference)/cov_sim_err, max over the upper triangle (per leading index)."""
    z = (ds.cov_sim.values - reference) / ds.cov_sim_err.values
    iu = np.triu_indices(4)
    return np.abs(z[..., iu[0], iu[1]]).max(axis=-1)


def test_steady_exact_matches_lyapunov(toy):
    A, D = _drift_diffusion(toy)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    n = 256
    s = SimulationSettings(method="exact", dt=0.1, burn_in=0.0, duration=40.0, trajectories=n, seed=11)
    ds = simulate(s, system=toy).isel(branch=0)
    assert list(ds.row.values) == list(toy.quadratures) == list(ds.col.values)
    assert ds.attrs["omega_ref"] == OMEGA_REF and bool(ds.stable)
    np.testing.assert_allclose(ds.cov.values, V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ds.cov_ref.values, V, rtol=1e-10, atol=1e-12)  # exact samples V itself
    threshold = z_threshold(N_ENTRIES, n)
    assert _z(ds, V) < threshold
    assert float(ds.zscore_max) < threshold and float(ds.zscore_max_continuous) < threshold
    assert ds.cov_sim.shape == (4, 4) and np.isfinite(float(ds.logneg_sim.sel(pair="a-b")))  # (0 here)


def test_em_matches_its_own_v_dt(toy):
    A, D = _drift_diffusion(toy)
    dt, n = 0.05, 256  # EM is stable for dt < 0.12 here
    V_dt = scipy.linalg.solve_discrete_lyapunov(np.eye(4) + A * dt, D * dt)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    s = SimulationSettings(method="em", dt=dt, burn_in=0.0, duration=40.0, trajectories=n, seed=5)
    ds = simulate(s, system=toy).isel(branch=0)
    np.testing.assert_allclose(ds.cov_ref.values, V_dt, rtol=1e-9, atol=1e-12)
    assert _z(ds, V_dt) < z_threshold(N_ENTRIES, n)
    assert float(ds.zscore_max_continuous) > z_threshold(N_ENTRIES, n)  # the O(dt) bias against V is resolved
    assert not np.allclose(V_dt, V, rtol=1e-2)


def test_transient_from_thermal_matches_moments(toy):
    A, D = _drift_diffusion(toy)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    V0 = toy.thermal_covariance({})
    times = (0.0, 2.0, 5.0, 10.0)
    n = 2000
    s = SimulationSettings(method="exact", dt=0.05, burn_in=0.0, duration=10.0, trajectories=n, seed=3,
                           initial="thermal", save_times=times)
    ds = simulate(s, system=toy).isel(branch=0)
    moments = np.stack([scipy.linalg.expm(A * t) @ (V0 - V) @ scipy.linalg.expm(A * t).T + V for t in times])
    np.testing.assert_allclose(ds.cov_moment.values, moments, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ds.time.values, np.array(times) / OMEGA_REF)
    assert np.max(_z(ds, moments)) < z_threshold(N_ENTRIES * len(times), n)
    assert np.nanmax(ds.zscore_max.values) < z_threshold(N_ENTRIES * len(times), n)


def test_traces_carry_the_system_quadratures(toy):
    s = SimulationSettings(method="exact", dt=0.1, duration=1.0, trajectories=2, traces=2, save_every=0.5,
                           initial="zero")
    ds = simulate(s, system=toy)
    assert list(ds.quadrature.values) == list(toy.quadratures)
    assert ds.trace.shape[-1] == 4 and np.all(ds.trace.isel(time=0).values == 0.0)


def test_initial_states_of_a_system(toy):
    with pytest.raises(UserError, match=r"initial.*\(4, 4\)"):
        point_model(SimulationSettings(initial=np.eye(6)), {}, 0, 0, toy)
    model = point_model(SimulationSettings(initial=2.0 * np.eye(4), dt=0.1), {"g": 0.1}, 0, 0, toy)
    np.testing.assert_array_equal(model.V0, 2.0 * np.eye(4))
    assert point_model(SimulationSettings(initial="zero", dt=0.1), {}, 0, 0, toy).V0.shape == (4, 4)
    with pytest.raises(UserError, match="thermal state"):
        point_model(SimulationSettings(initial="thermal", dt=0.1), {}, 0, 0, NoThermalState())


def test_resonator_thermal_covariance():
    """The resonator's thermal state: optical vacuum, the mechanics at n_m."""
    r = SpinningResonator()
    n = device_of(r.resolve({})).n_thermal
    np.testing.assert_array_equal(r.thermal_covariance({}), np.diag([0.5] * 4 + [n + 0.5] * 2))
    assert math.isfinite(n)
