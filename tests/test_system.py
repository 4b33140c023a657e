"""The system seam (sde_com.physics.system): the resonator through it, the registry, capabilities, a toy
two-mode system with a closed-form steady state, and the one stability decision."""

import math
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest

from sde_com.errors import UserError
from sde_com.physics import system as system_module
from sde_com.physics.gaussian import logneg, logneg_symplectic
from sde_com.physics.linear import lyapunov_covariance, lyapunov_covariance_reference, lyapunov_residual
from sde_com.physics.model import points
from sde_com.physics.resonator.device import Device, mode_detunings
from sde_com.physics.resonator.drift import diffusion_matrix, drift_matrix
from sde_com.physics.resonator.points import operating_points
from sde_com.physics.resonator.steady import steady_branches
from sde_com.physics.resonator.system import SpinningResonator
from sde_com.physics.stability import MARGINAL_TOL, decide_stability
from sde_com.physics.system import (
    SYSTEMS,
    Branch,
    LinearSystem,
    get_system,
    register_system,
    require,
    system_names,
)
from sde_com.spec import Key

# (device, detuning, direction): stable, unstable, spinning + backscattering both ways, bistable (3 branches)
POINTS = [
    (Device(), 0.75, "ccw"),
    (Device(), 0.2, "ccw"),
    (Device(Omega=3e4, J=2e6), 1.0, "ccw"),
    (Device(Omega=3e4, J=2e6), 1.0, "cw"),
    (Device(power=0.1), 1.6, "ccw"),
]


def _reference_branches(device, detuning, direction):
    """The per-point path as it was before the seam: Eq. (7) branches, Eq. (6) drift, D, scipy's V."""
    kappa, omega_m = device.kappa, device.omega_m
    delta_u, delta_v = mode_detunings(detuning * omega_m, device.sagnac_shift, direction)
    D = diffusion_matrix(kappa, device.gamma_m, device.n_thermal)
    g = math.sqrt(2.0) * device.G0
    out = []
    for b in steady_branches(delta_u, delta_v, device.J, kappa, device.G0, device.epsilon, omega_m):
        A = drift_matrix(kappa, b["delta_u_eff"], b["delta_v_eff"], device.J, g * b["alpha_u"], g * b["alpha_v"],
                         omega_m, device.gamma_m)
        out.append((b, A, D))
    return out


@pytest.mark.parametrize(("device", "detuning", "direction"), POINTS)
def test_resonator_through_the_seam_is_unchanged(device, detuning, direction):
    ref = _reference_branches(device, detuning, direction)
    params = {"detuning": detuning, "direction": direction, **device.as_dict()}
    system = get_system("spinning_resonator")
    branches = system.branches(params)
    ops = operating_points(device, detuning, direction)
    assert len(branches) == len(ops) == len(ref) >= 1
    for (b, A, D), br, op in zip(ref, branches, ops, strict=True):
        # identical arithmetic, so identical numbers (exact equality, no tolerance)
        assert np.array_equal(br.drift, A) and np.array_equal(br.diffusion, D)
        assert np.array_equal(op.drift, A) and np.array_equal(op.diffusion, D)
        assert (op.q_s, op.alpha_u, op.alpha_v) == (b["q_s"], b["alpha_u"], b["alpha_v"])
        assert dict(br.mean_field) == b
        verdict = system.stability(br, params)
        assert (op.stable, op.marginal, op.growth_rate) == (verdict.stable, verdict.marginal, verdict.growth_rate)
        assert op.growth_rate == float(np.max(np.linalg.eigvals(A).real))
        if op.stable:
            assert np.array_equal(op.cov, lyapunov_covariance_reference(A / device.omega_m, D / device.omega_m))
            assert logneg(op.cov, 0, 2) == logneg(op.cov) == op.logneg
        else:
            assert op.cov is None and math.isnan(op.logneg)
    assert [p.stable for p in ops] == [p.stable for p in points(system, params)]


def test_bistable_point_has_three_branches():
    ops = operating_points(Device(power=0.1), 1.6)
    assert len(ops) == 3 and [p.q_s for p in ops] == sorted(p.q_s for p in ops)
    assert ops[0].stable and not ops[1].stable


def test_resonator_declarations():
    s = SpinningResonator()
    assert s.name == "spinning_resonator" and s.modes == ("U", "V", "m")
    assert s.quadratures == ("xU", "yU", "xV", "yV", "q", "p") and s.dimension == 6
    assert list(s.parameters)[:2] == ["detuning", "direction"]
    assert s.capabilities == {"mean_field_dynamics", "output_ports", "truncated_wigner"}
    d = Device()
    assert s.reference_rate({}) == d.omega_m
    assert s.output_ports({}) == {"U": d.kappa, "V": d.kappa}


def test_resonator_parameters_are_the_schema_model_keys():
    from sde_com.runs.schema import SCHEMA

    assert tuple(SCHEMA["model"].keys.values()) == tuple(SpinningResonator.parameters.values())


def test_resolve_checks_names_and_values():
    s = SpinningResonator()
    assert s.resolve({"power": 0.05})["power"] == 0.05 and s.resolve({})["detuning"] == 1.0
    with pytest.raises(UserError, match="unknown parameter.*'powr'.*spinning_resonator"):
        s.resolve({"powr": 1.0})
    with pytest.raises(UserError, match="omega_m"):
        s.branches({"omega_m": -1.0})
    with pytest.raises(UserError, match="direction"):
        s.branches({"direction": "up"})


def test_resonator_mean_field_dynamics_is_consistent_with_branches():
    """The steady state is a fixed point of the mean-field equations (rhs = 0 to rounding) and the drift
    linearized there is Eq. (6)'s A/ω_m."""
    s = SpinningResonator()
    params = {"detuning": 1.6, "power": 0.1, "J": 2e6, "Omega": 3e4}
    mf = s.mean_field_dynamics(params)
    omega_m = s.reference_rate(params)
    for b in s.branches(params):
        z = mf.steady_state(b)
        # 1e-12: a fixed point up to the rounding of the root of Eq. (7) (entries of rhs are O(1) sums)
        assert np.max(np.abs(mf.rhs(0.0, z, 1.0))) < 1e-12 * max(1.0, np.max(np.abs(z)))
        # 1e-12 relative: the same Eq. (6) from differently scaled (but equal) inputs
        np.testing.assert_allclose(mf.drift(z) * omega_m, b.drift, rtol=0, atol=1e-12 * np.abs(b.drift).max())


# Registry ----------------------------------------------------------------------------------------


class ToySqueezer(LinearSystem):
    """Two modes a, b damped at γ towards a two-mode squeezed vacuum of squeeze r, counter-rotating at ω.

    A = −γ I + ω (R ⊕ −R), R = [[0, 1], [−1, 0]]; D = 2γ V_r with V_r the two-mode squeezed vacuum. V_r is
    invariant under a → a e^{−iωt}, b → b e^{iωt}, so the Lyapunov solution is V = V_r and E_N = 2r.
    """

    name = "toy_squeezer"
    modes = ("a", "b")
    quadratures = ("xa", "pa", "xb", "pb")
    parameters = MappingProxyType({k.name: k for k in (
        Key("gamma", "number", "damping rate γ", "rad s-1", 1.0e6, minimum=0.0, exclusive_minimum=True),
        Key("omega", "number", "rotation rate ω", "rad s-1", 3.0e6),
        Key("r", "number", "squeeze parameter", "1", 0.7, minimum=0.0),
    )})

    @staticmethod
    def squeezed_vacuum(r):
        c, s = math.cosh(2 * r), math.sinh(2 * r)
        Z = np.diag([1.0, -1.0])
        return 0.5 * np.block([[c * np.eye(2), s * Z], [s * Z, c * np.eye(2)]])

    def reference_rate(self, params):
        return self.resolve(params)["gamma"]

    def branches(self, params):
        p = self.resolve(params)
        R = np.array([[0.0, 1.0], [-1.0, 0.0]])
        A = -p["gamma"] * np.eye(4) + p["omega"] * np.block([[R, np.zeros((2, 2))], [np.zeros((2, 2)), -R]])
        return [Branch(0, {}, A, 2.0 * p["gamma"] * self.squeezed_vacuum(p["r"]))]


def test_toy_two_mode_system_lyapunov_and_logneg():
    toy = ToySqueezer()
    params = {"r": 0.7}
    (point,) = points(toy, params)
    (branch,) = toy.branches(params)
    assert point.stable and not point.marginal and point.growth_rate == pytest.approx(-1.0e6)
    V = point.cov
    # residual of A V + V Aᵀ + D = 0 at rounding level (LAPACK Bartels–Stewart on a 4×4)
    assert lyapunov_residual(branch.drift, V, branch.diffusion) < 1e-13
    np.testing.assert_allclose(V, toy.squeezed_vacuum(0.7), rtol=0, atol=1e-12)
    # the numba solver is generic in the dimension (n(n+1)/2 = 10 unknowns here)
    np.testing.assert_allclose(lyapunov_covariance(branch.drift / 1e6, branch.diffusion / 1e6), V, atol=1e-12)
    # E_N = 2r in closed form; symmetric under swapping the pair; independent symplectic route agrees
    assert logneg(V, 0, 1) == pytest.approx(1.4, rel=1e-12)
    assert logneg(V, 1, 0) == pytest.approx(1.4, rel=1e-12)
    assert logneg_symplectic(V) == pytest.approx(1.4, rel=1e-9)
    assert math.isnan(point.q_s) and point.mean_field == {}


def test_logneg_takes_any_number_of_modes_and_checks_its_arguments():
    V = ToySqueezer.squeezed_vacuum(0.3)
    # a two-mode (4×4) covariance: its only pair by default (once an IndexError: the default was the resonator's)
    assert logneg(V) == logneg(V, 0, 1) == logneg(V, 0, -1) == pytest.approx(logneg(V, 1, 0), abs=1e-14)
    assert logneg(V) == pytest.approx(0.6, rel=1e-12)  # two-mode squeezed vacuum: E_N = 2r
    for i, j in ((0, 0), (0, 2), (-1, 1)):
        with pytest.raises(ValueError):
            logneg(V, i, j)
    with pytest.raises(ValueError):
        logneg(np.eye(3), 0, 1)


def test_registry_lookups():
    assert "spinning_resonator" in system_names()
    assert SYSTEMS["spinning_resonator"] is SpinningResonator
    assert isinstance(get_system("spinning_resonator"), SpinningResonator)
    register_system(SpinningResonator)  # the same class again: a no-op
    with pytest.raises(UserError, match=r"unknown system 'nope'.*spinning_resonator"):
        get_system("nope")

    class Impostor(ToySqueezer):
        name = "spinning_resonator"

    with pytest.raises(TypeError, match="taken"):
        register_system(Impostor)


def test_entry_point_plugin_is_found_by_name(monkeypatch):
    loaded = []

    def load():
        loaded.append(True)
        return ToySqueezer

    ep = SimpleNamespace(name="toy_squeezer", value="toy_pkg.systems:ToySqueezer", load=load)

    def entry_points(group):
        return [ep] if group == system_module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(system_module.metadata, "entry_points", entry_points)
    try:
        assert "toy_squeezer" in system_names() and not loaded  # listing does not import the plug-in
        toy = get_system("toy_squeezer")
        assert isinstance(toy, ToySqueezer) and loaded == [True]
        assert SYSTEMS["toy_squeezer"] is ToySqueezer
    finally:
        system_module._REGISTRY.pop("toy_squeezer", None)


def test_require_names_run_kind_system_and_capability():
    toy = ToySqueezer()
    require(SpinningResonator(), "output_ports", "detect")
    with pytest.raises(UserError) as info:
        require(toy, "output_ports", "detect")
    msg = str(info.value)
    assert "detect" in msg and "toy_squeezer" in msg and "output_ports" in msg
    with pytest.raises(UserError, match="mean_field_dynamics.*toy_squeezer"):
        toy.mean_field_dynamics({})
    with pytest.raises(ValueError, match="capability"):
        require(toy, "teleportation", "detect")


# The stability decision --------------------------------------------------------------------------


def _damped_pair(rate, omega=1.0):
    return np.array([[rate, omega], [-omega, rate]])


def test_stability_stable_and_unstable():
    s = decide_stability(_damped_pair(-0.1), 1.0)
    assert s.stable and not s.marginal and s.growth_rate == pytest.approx(-0.1)
    u = decide_stability(_damped_pair(0.1) * 1e7, 1e7)
    assert not u.stable and not u.marginal and u.growth_rate == pytest.approx(1e6)
    nan = decide_stability(np.full((2, 2), np.nan), 1.0)
    assert not nan.stable and nan.marginal


def test_stability_marginal_band():
    # Both methods agree (stable resp. unstable) but |Re λ| = 1e-3·MARGINAL_TOL·ω_ref: rounding decides
    for rate in (-1e-3 * MARGINAL_TOL, 1e-3 * MARGINAL_TOL):
        s = decide_stability(_damped_pair(rate * 5e7) , 5e7)
        assert s.stable == (rate < 0) and s.marginal
    # just outside the band: a verdict
    assert not decide_stability(_damped_pair(-10 * MARGINAL_TOL), 1.0).marginal


def test_stability_methods_disagree_at_the_tolerance():
    # A nilpotent drift (double eigenvalue 0): det A = 0 exactly, so Routh–Hurwitz says "not stable", while
    # LAPACK's eigenvalues come out at ±O(ε) (here typically −3e-17 < 0: the two methods disagree). The
    # decision follows Routh–Hurwitz and the point is marginal either way.
    s = decide_stability(np.array([[1.0, 1.0], [-1.0, -1.0]]), 1.0)
    assert not s.stable and s.marginal and abs(s.growth_rate) < MARGINAL_TOL


def test_stability_disagreement_alone_flags_marginal(monkeypatch):
    # Disagreement far outside the band (forced: Routh–Hurwitz stubbed) is still flagged marginal.
    from sde_com.physics import stability

    monkeypatch.setattr(stability, "routh_hurwitz_stable", lambda A: True)
    s = decide_stability(_damped_pair(0.5), 1.0)
    assert s.stable and s.marginal and s.growth_rate == pytest.approx(0.5)


def test_euler_maruyama_step_with_correlated_noise():
    from sde_com.physics.linear import euler_maruyama_step

    (branch,) = ToySqueezer().branches({})
    F, L = euler_maruyama_step(branch.drift, branch.diffusion, 1e-8)
    # L Lᵀ = D dt to rounding (eigh of a 4×4 positive definite D)
    np.testing.assert_allclose(L @ L.T, branch.diffusion * 1e-8, rtol=0, atol=1e-13 * np.abs(branch.diffusion).max()
                               * 1e-8)
    np.testing.assert_array_equal(F, np.eye(4) + branch.drift * 1e-8)
