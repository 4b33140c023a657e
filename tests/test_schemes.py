"""The scheme registry (sde_com.simulation.schemes): each scheme's step map and the covariances it samples
are the physics.linear functions; an unknown name is refused naming the allowed ones; a scheme registered
from outside is selectable by name without touching any other code."""

import numpy as np
import pytest

from sde_com.physics.linear import (
    discrete_moment_covariance,
    discrete_stationary_covariance,
    euler_maruyama_max_dt,
    euler_maruyama_step,
    exact_step,
    lyapunov_covariance_reference,
    moment_covariance,
)
from sde_com.resonator import Device, operating_points
from sde_com.simulation.keys import SIMULATE
from sde_com.simulation.schemes import (
    SCHEMES,
    EulerMaruyama,
    ExactDiscretization,
    Scheme,
    get_scheme,
    register_scheme,
)
from sde_com.simulation.simulate import SimulationSettings, simulate_point, step_maps


@pytest.fixture(scope="module")
def point():
    d = Device()
    p = operating_points(d, 0.75)[0]
    return p.drift / d.omega_m, p.diffusion / d.omega_m, d


def test_registry_holds_the_two_schemes_under_their_names():
    assert list(SCHEMES) == ["em", "exact"]
    assert isinstance(SCHEMES["em"], EulerMaruyama) and isinstance(SCHEMES["exact"], ExactDiscretization)
    assert all(name == s.name for name, s in SCHEMES.items())
    assert SIMULATE.keys["method"].choices == tuple(SCHEMES)  # the schema reads the registry


@pytest.mark.parametrize(("name", "step"), [("em", euler_maruyama_step), ("exact", exact_step)])
def test_step_map_is_the_physics_function(point, name, step):
    A, D, _ = point
    F, L = SCHEMES[name].step(A, D, 0.05)
    F_ref, L_ref = step(A, D, 0.05)
    assert np.array_equal(F, F_ref) and np.array_equal(L, L_ref)
    assert [np.array_equal(a, b) for a, b in zip(step_maps(A, D, 0.05, name), (F, L), strict=True)] == [True, True]


def test_stationary_covariance_and_moments(point):
    A, D, _ = point
    V = lyapunov_covariance_reference(A, D)
    V0 = np.eye(6) * 0.5
    steps = np.array([0, 3, 10])
    em, exact = SCHEMES["em"], SCHEMES["exact"]
    F, L = em.step(A, D, 0.05)
    assert np.array_equal(em.stationary_covariance(F, L, V), discrete_stationary_covariance(F, L))
    assert em.stationary_covariance(F, L, None) is None  # unstable: no steady state
    assert np.array_equal(em.moment_reference(F, L, V0, steps, None), discrete_moment_covariance(F, L, V0, steps))
    F, L = exact.step(A, D, 0.05)
    assert exact.stationary_covariance(F, L, V) is V
    V_moment = np.stack([moment_covariance(A, D, V0, t) for t in steps * 0.05])
    assert exact.moment_reference(F, L, V0, steps, V_moment) is V_moment
    # the exact map samples V of Eq. (11) itself, to rounding
    np.testing.assert_allclose(discrete_stationary_covariance(F, L), V, rtol=1e-8, atol=1e-10 * np.abs(V).max())


def test_only_euler_maruyama_limits_dt(point):
    A, D, _ = point
    max_dt = euler_maruyama_max_dt(A)
    assert SCHEMES["em"].max_dt(A) == max_dt and SCHEMES["exact"].max_dt(A) == np.inf
    with pytest.raises(ValueError, match="unstable for Euler–Maruyama"):
        SCHEMES["em"].check_dt(A, 1.01 * max_dt)
    SCHEMES["exact"].check_dt(A, 100 * max_dt)  # no limit
    assert SCHEMES["em"].raw_noise and not SCHEMES["exact"].raw_noise


def test_unknown_scheme_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown scheme 'rk4'; allowed: 'em', 'exact'"):
        get_scheme("rk4")
    with pytest.raises(ValueError, match=r"method must be one of 'em', 'exact', got 'rk4'"):
        SimulationSettings(method="rk4")


class _Toy(ExactDiscretization):
    """The exact map under another name: a scheme defined and registered outside the package."""

    name = "toy-exact"
    doc = "the exact map, registered by a test"


def test_a_registered_scheme_is_selectable_without_other_changes(point):
    A, D, d = point
    assert "toy-exact" not in SCHEMES
    register_scheme(_Toy())
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_scheme(_Toy())
        kw = dict(dt=0.2, duration=20.0, trajectories=8, seed=3)
        toy = simulate_point(A * d.omega_m, D * d.omega_m, d.omega_m, d.n_thermal,
                             SimulationSettings(method="toy-exact", **kw))
        ref = simulate_point(A * d.omega_m, D * d.omega_m, d.omega_m, d.n_thermal,
                             SimulationSettings(method="exact", **kw))
        assert np.array_equal(toy["cov_sim"], ref["cov_sim"]) and np.array_equal(toy["cov_ref"], ref["cov_ref"])
    finally:
        SCHEMES.pop("toy-exact")
    with pytest.raises(ValueError, match="method must be one of 'em', 'exact'"):
        SimulationSettings(method="toy-exact")


def test_register_refuses_what_is_not_a_scheme():
    with pytest.raises(ValueError, match="Scheme instance"):
        register_scheme(object())
    with pytest.raises(ValueError, match="Scheme instance"):
        register_scheme(Scheme())  # no name


def test_moment_recursion_kernel_gives_the_bits_of_the_numpy_loop(point, monkeypatch):
    """``moment_covariances`` runs its recursion in a kernel from MOMENT_KERNEL_TIMES times on and in NumPy
    below: both must give the same bits (uneven gaps, a repeated time, a start at t > 0), and agree with the
    one-time solution ``moment_covariance`` to rounding."""
    from sde_com.physics import linear

    A, D, _ = point
    V0 = np.diag([0.5, 0.5, 0.5, 0.5, 3.0, 3.0])
    steps = np.array([2, 3, 3, 7, 8, 9, 20, 21, 22, 60])
    numpy_loop = linear.moment_covariances(A, D, V0, steps, 0.05)
    monkeypatch.setattr(linear, "MOMENT_KERNEL_TIMES", 1)
    kernel = linear.moment_covariances(A, D, V0, steps, 0.05)
    assert np.array_equal(kernel, numpy_loop)
    one_by_one = np.stack([moment_covariance(A, D, V0, t) for t in steps * 0.05])
    # the recursion rounds once per gap, the one-time solution once: ~10 gaps × ε relative
    np.testing.assert_allclose(kernel, one_by_one, rtol=1e-10, atol=1e-12 * np.abs(one_by_one).max())
