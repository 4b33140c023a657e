"""Physics of the steady-state core: device constants, Eq. (7) branches, Eq. (6) stability, Eq. (11), E_N."""

import math

import numpy as np
import pytest

import sde_com
from sde_com.physics.gaussian import logneg_from_blocks, symplectic_form
from sde_com.physics.linear import lyapunov_residual
from sde_com.physics.resonator.chain import run_chain
from sde_com.physics.resonator.device import Device, mode_detunings
from sde_com.physics.resonator.steady import coupling_strength, mean_fields, real_polynomial_roots, steady_branches

# Rounding level for quantities of order one built from O(10) floating-point operations on O(1) numbers.
ROUNDING = 1e-12


def random_symplectic(rng, n_modes):
    """A random symplectic matrix: exp of a Hamiltonian matrix Ω_s·H with H symmetric."""
    H = rng.normal(size=(2 * n_modes, 2 * n_modes)) * 0.4
    H = H + H.T
    import scipy.linalg

    return scipy.linalg.expm(symplectic_form(n_modes) @ H)


def random_single_mode_state(rng):
    S = random_symplectic(rng, 1)
    n_th = rng.uniform(0, 3)
    return (n_th + 0.5) * S @ S.T


def two_mode_squeezed_vacuum(r):
    c, s = math.cosh(2 * r), math.sinh(2 * r)
    Z = np.diag([1.0, -1.0])
    return 0.5 * np.block([[c * np.eye(2), s * Z], [s * Z, c * np.eye(2)]])


# Device -------------------------------------------------------------------------------------------


def test_derived_constants_match_physics_table():
    d = Device()
    # docs/physics.md quotes these to three or four digits
    assert d.omega_c == pytest.approx(1.215e15, rel=1e-3)
    assert d.kappa == pytest.approx(3.80e7, rel=1e-3)
    assert d.G0 == pytest.approx(452, rel=1e-3)
    assert d.n_thermal == pytest.approx(270, rel=2e-3)
    assert d.sagnac_shift == 0.0
    assert Device(Omega=1.0).sagnac_shift == pytest.approx(3587, rel=1e-3)
    assert Device(Omega=8e3).sagnac_shift / d.omega_m == pytest.approx(0.455, rel=2e-3)
    assert Device(Omega=23e3).sagnac_shift / d.omega_m == pytest.approx(1.31, rel=2e-3)
    assert Device(temperature=0.0).n_thermal == 0.0
    # ε² = 2κP/(ħω_c): check the definition independently
    assert d.epsilon**2 == pytest.approx(2 * d.kappa * d.power / (1.054571817e-34 * d.omega_c), rel=1e-12)


def test_dispersion_term_reduces_the_shift():
    # Eq. (1): Δ_F ∝ 1 − 1/n² − (λ/n) dn/dλ; a positive dn/dλ of 1 % of (1 − 1/n²)·n/λ lowers it by 1 %
    d0 = Device(Omega=1e4)
    dn = 0.01 * (1 - 1 / 1.48**2) * 1.48 / 1.55e-6
    assert Device(Omega=1e4, dn_dlambda=dn).sagnac_shift == pytest.approx(0.99 * d0.sagnac_shift, rel=1e-12)


def test_hz_helper():
    assert sde_com.hz_to_rad_per_s(1.0) == pytest.approx(2 * math.pi)


@pytest.mark.parametrize(
    "field, value, fragment",
    [("mass", -1e-11, "mass must be > 0"), ("quality_factor", 0.0, "quality_factor must be > 0"),
     ("temperature", -0.1, "temperature must be >= 0"), ("power", float("nan"), "power must be finite"),
     ("J", "big", "J must be a real number")],
)
def test_device_rejects_bad_values_naming_the_field(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        Device(**{field: value})


def test_directions():
    assert mode_detunings(1.0, 0.25, "ccw") == (1.25, 0.75)
    assert mode_detunings(1.0, 0.25, "cw") == (0.75, 1.25)
    with pytest.raises(ValueError, match="direction must be one of"):
        mode_detunings(1.0, 0.25, "left")


# Steady state, Eq. (7) -----------------------------------------------------------------------------


def self_consistency_residual(y, d_u, d_v, j, k, eps_over_kappa, G0, kappa, omega_m):
    """Eq. (7) written directly: G₀q_s/κ − (G₀²/(ω_m κ))(|α_U|² + |α_V|²), independent of the polynomial."""
    a = 1 + 1j * (d_u - y)
    b = 1 + 1j * (d_v - y)
    alpha_u = b * eps_over_kappa / (a * b + j * j)
    alpha_v = -1j * j * alpha_u / b
    return y - G0**2 / (omega_m * kappa) * (abs(alpha_u) ** 2 + abs(alpha_v) ** 2)


@pytest.mark.parametrize("power, J, detuning", [(0.02, 0.0, 0.75), (0.2, 0.0, 3.0), (0.5, 3.8e7, 4.0),
                                                 (0.5, 3.8e7, 5.5), (0.1, 1e8, -1.0), (0.0, 0.0, 1.0)])
def test_every_branch_found_against_a_sign_scan(power, J, detuning):
    d = Device(power=power, J=J, Omega=5e3)
    du, dv = mode_detunings(detuning * d.omega_m, d.sagnac_shift, "cw")
    k, kap = coupling_strength(d.G0, d.epsilon, d.omega_m, d.kappa), d.kappa
    args = (du / kap, dv / kap, J / kap, k, d.epsilon / kap, d.G0, kap, d.omega_m)
    branches = steady_branches(du, dv, J, kap, d.G0, d.epsilon, d.omega_m)
    # independent count: sign changes of the Eq. (7) residual on a fine grid covering all roots
    # (every root has 0 <= y <= k·max(1 + (d_v − y)² + j²)/|·|² ... bounded by the Cauchy bound below)
    c = np.array(sde_com.physics.resonator.steady.steady_polynomial(*args[:4]))
    bound = 1 + np.max(np.abs(c[1:]))
    grid = np.linspace(-bound, bound, 400_000)  # even count: never exactly on the root y = 0 of P = 0
    res = self_consistency_residual(grid, *args)
    scan = int(np.sum(np.sign(res[1:]) != np.sign(res[:-1])))
    assert len(branches) == scan
    for b in branches:
        y = b["q_s"] * d.G0 / kap
        assert abs(self_consistency_residual(y, *args)) <= ROUNDING * max(1.0, abs(y))
    assert [b["q_s"] for b in branches] == sorted(b["q_s"] for b in branches)


def test_five_branches_exist_and_are_found():
    # with backscattering, high power and large detuning Eq. (7) has five real roots
    d = Device(power=0.5, J=3.8e7)
    xs = np.linspace(3.0, 6.0, 301)
    counts = [len(sde_com.resonator.operating_points(d, float(x))) for x in xs]
    assert max(counts) == 5 and min(counts) == 1


def test_polynomial_roots_match_numpy_roots():
    rng = np.random.default_rng(7)
    out = np.empty(5)
    for _ in range(2000):
        c = rng.normal(size=6)
        n = real_polynomial_roots(c, out)
        ref = np.roots(c)
        # companion eigenvalues with |Im| below 1e-9 are real roots; random polynomials have no near-doubles
        ref = np.sort(ref[np.abs(ref.imag) < 1e-9].real)
        assert n == ref.size
        np.testing.assert_allclose(out[:n], ref, rtol=1e-7, atol=1e-9)


def test_mean_fields_without_backscattering():
    # J = 0: α_V = 0 and α_U = ε/(κ + iΔ̃_U)
    au, av = mean_fields(0.3, -0.2, 0.0, 0.1, 5.0)
    assert av == 0
    assert au == pytest.approx(5.0 / (1 + 1j * 0.2))


# Linear model, stability, Lyapunov ------------------------------------------------------------------


def random_points(rng, n):
    for _ in range(n):
        d = Device(J=rng.uniform(0, 2) * 3.8e7, Omega=rng.uniform(-3e4, 3e4), power=rng.uniform(0, 0.3),
                   temperature=rng.uniform(0, 1))
        yield d, float(rng.uniform(-2, 5)), str(rng.choice(["ccw", "cw"]))


def chain_for(d, detuning, direction):
    du, dv = mode_detunings(detuning * d.omega_m, d.sagnac_shift, direction)
    p = dict(kappa=d.kappa, delta_u=du, delta_v=dv, J=d.J, G0=d.G0, epsilon=d.epsilon, omega_m=d.omega_m,
             gamma_m=d.gamma_m, n_thermal=d.n_thermal)
    return run_chain({k: np.array([v]) for k, v in p.items()})


def test_fast_chain_agrees_with_reference_path():
    """Routh–Hurwitz vs eigenvalues, 21-unknown solve vs Bartels–Stewart, on random points."""
    rng = np.random.default_rng(3)
    checked = 0
    for d, x, direction in random_points(rng, 400):
        ref = sde_com.resonator.operating_points(d, x, direction)
        out = chain_for(d, x, direction)
        assert out["n_branches"][0] == len(ref)
        for b, p in enumerate(ref):
            if abs(p.growth_rate) < 1e-6 * d.omega_m:
                continue  # marginal within rounding: either answer is right
            assert bool(out["stable"][0, b]) == p.stable
            if p.stable:
                checked += 1
                V = out["cov"][0, b]
                # both solvers are backward stable; agreement to 1e-8 relative allows a condition number
                # of the Lyapunov operator up to ~1e7 (weakly damped mechanics: γ_m/ω_m ~ 1e-4)
                np.testing.assert_allclose(V, p.cov, rtol=1e-8, atol=1e-8 * np.abs(p.cov).max())
                assert out["logneg"][0, b, 0] == pytest.approx(p.logneg, abs=1e-9)
    assert checked > 100


def test_lyapunov_residual_and_physicality_on_a_sweep():
    ds = sde_com.sweep(detuning=np.linspace(-2, 5, 141), J=[0.0, 5e7], Omega=[0.0, 2e4], power=[0.02, 0.3],
                       direction=["ccw", "cw"])
    d0 = Device()
    stable = ds.stable.values
    assert stable.any() and (~stable & (ds.n_branches.values[..., None] > np.arange(ds.sizes["branch"]))).any()
    cov = ds.cov.values[stable]
    n_checked = 0
    for idx in zip(*np.nonzero(stable), strict=True):
        sel = dict(zip(ds.stable.dims, idx, strict=True))
        point = {k: ds[k].values[v] for k, v in sel.items() if k != "branch"}
        d = Device(J=float(point["J"]), Omega=float(point["Omega"]), power=float(point["power"]))
        p = sde_com.resonator.operating_points(d, float(point["detuning"]), str(point["direction"]))[sel["branch"]]
        V = ds.cov.values[idx]
        assert lyapunov_residual(p.drift / d0.omega_m, V, p.diffusion / d0.omega_m) < 1e-13
        assert sde_com.is_physical(V)
        n_checked += 1
        if n_checked >= 300:
            break
    assert all(sde_com.is_physical(V) for V in cov)
    # unstable branches: no steady state, NaN (never 0) for E_N and V
    unstable = ~stable & ~np.isnan(ds.photons.values)
    assert unstable.any()
    assert np.all(np.isnan(ds.logneg.values[unstable]))
    assert np.all(np.isnan(ds.cov.values[unstable]))


def test_routh_hurwitz_detects_known_cases():
    assert sde_com.routh_hurwitz_stable(-np.eye(6) + np.diag(np.ones(5), 1))
    A = -np.eye(6)
    A[2, 2] = 1e-3
    assert not sde_com.routh_hurwitz_stable(A)
    rot = np.zeros((6, 6))  # undamped oscillators: marginal, not stable
    for i in range(0, 6, 2):
        rot[i, i + 1], rot[i + 1, i] = 1.0, -1.0
    assert not sde_com.routh_hurwitz_stable(rot)


# Entanglement, Eqs. (12)–(13) --------------------------------------------------------------------------


@pytest.mark.parametrize("r", [0.0, 0.1, 0.5, 1.3])
def test_two_mode_squeezed_vacuum_has_logneg_2r(r):
    V = two_mode_squeezed_vacuum(r)
    assert logneg_from_blocks(V) == pytest.approx(2 * r, abs=1e-12)
    assert sde_com.logneg_symplectic(V) == pytest.approx(2 * r, abs=1e-12)


def test_product_states_have_zero_logneg():
    rng = np.random.default_rng(11)
    for _ in range(200):
        V = np.zeros((4, 4))
        V[:2, :2] = random_single_mode_state(rng)
        V[2:, 2:] = random_single_mode_state(rng)
        assert 0.0 <= logneg_from_blocks(V) < ROUNDING


def test_closed_formula_agrees_with_symplectic_eigenvalues():
    rng = np.random.default_rng(5)
    for _ in range(300):
        S = random_symplectic(rng, 2)
        nu = rng.uniform(0.5, 3.0, size=2)
        V = S @ np.diag(np.repeat(nu, 2)) @ S.T  # a random physical two-mode state (Williamson form)
        assert sde_com.is_physical(V)
        assert logneg_from_blocks(V) == pytest.approx(sde_com.logneg_symplectic(V), abs=1e-9)
    # and on the simulator's own states, every pair of modes
    ds = sde_com.sweep(detuning=np.linspace(0, 2, 41), J=4e7, Omega=1e4, direction=["ccw", "cw"])
    for V in ds.cov.values.reshape(-1, 6, 6):
        if np.isnan(V).any():
            continue
        for pair in ((0, 2), (1, 2), (0, 1)):  # (U, m), (V, m), (U, V)
            v4 = sde_com.physics.gaussian.reduced_covariance(V, *pair)
            assert sde_com.logneg(V, *pair) == pytest.approx(sde_com.logneg_symplectic(v4), abs=1e-9)


def test_logneg_is_symmetric_under_swapping_the_pair():
    ds = sde_com.sweep(detuning=np.linspace(0, 2, 21), J=4e7)
    for V in ds.cov.values.reshape(-1, 6, 6):
        if not np.isnan(V).any():
            assert sde_com.logneg(V, 0, 2) == pytest.approx(sde_com.logneg(V, 2, 0), abs=1e-14)


# Sweep invariants ------------------------------------------------------------------------------------------


def test_logneg_nonnegative_and_zero_without_coupling():
    ds = sde_com.sweep(detuning=np.linspace(-2, 4, 121), J=[0.0, 4e7], Omega=[0.0, 2e4], store_cov=False)
    for name in ("logneg", "logneg_reflected", "logneg_optical"):
        v = ds[name].values
        assert np.all(v[~np.isnan(v)] >= 0.0)
    # no drive: α = 0, so G_j = √2 G₀ α_j = 0 and the mechanics decouples
    off = sde_com.sweep(detuning=np.linspace(-2, 4, 61), power=0.0, J=4e7, store_cov=False)
    assert off.stable.all()
    assert np.all(off.logneg.values < ROUNDING) and np.all(off.logneg_reflected.values < ROUNDING)
    # G₀ → 0 at fixed photon number is G₀ ∝ m^(-1/2) → 0: E_N vanishes
    heavy = sde_com.sweep(detuning=np.linspace(0, 2, 41), mass=1e-3, store_cov=False)
    assert np.nanmax(heavy.logneg.values) < 1e-6


def test_at_rest_both_directions_agree():
    ds = sde_com.sweep(detuning=np.linspace(-2, 4, 121), J=[0.0, 4e7], direction=["ccw", "cw"], Omega=0.0)
    a, b = ds.sel(direction="ccw"), ds.sel(direction="cw")
    for name in ("logneg", "photons", "coupling", "stable", "cov"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_reversing_the_spin_swaps_the_directions():
    kw = dict(detuning=np.linspace(-2, 4, 121), J=[0.0, 4e7], direction=["ccw", "cw"])
    plus = sde_com.sweep(Omega=1.5e4, **kw)
    minus = sde_com.sweep(Omega=-1.5e4, **kw)
    for name in ("logneg", "photons", "coupling", "stable", "cov"):
        np.testing.assert_array_equal(plus[name].sel(direction="ccw").values,
                                      minus[name].sel(direction="cw").values)


def test_spin_without_backscattering_only_shifts_the_curve():
    # J = 0: E_N of the driven mode depends on Δ_U = Δ_c ± Δ_F only (docs/physics.md), so the spinning curve
    # is the resting one shifted by ∓Δ_F/ω_m and its maximum does not change
    Omega = 8e3
    shift = Device(Omega=Omega).sagnac_shift / Device().omega_m
    x = np.linspace(0.0, 2.0, 201)
    rest = sde_com.sweep(detuning=x, Omega=0.0, store_cov=False)
    ccw = sde_com.sweep(detuning=x - shift, Omega=Omega, direction="ccw", store_cov=False)
    cw = sde_com.sweep(detuning=x + shift, Omega=Omega, direction="cw", store_cov=False)
    for spun in (ccw, cw):
        # the detunings agree to one rounding of x ∓ shift (~1e-16 relative); E_N varies at O(1) per ω_m
        np.testing.assert_allclose(spun.logneg.values, rest.logneg.values, rtol=0, atol=1e-9)
        assert float(spun.logneg_max) == pytest.approx(float(rest.logneg_max), abs=1e-9)


def test_multistable_points_report_every_branch():
    ds = sde_com.sweep(detuning=np.linspace(3, 6, 121), power=0.5, J=3.8e7, store_cov=False)
    n = ds.n_branches.values
    assert ds.sizes["branch"] == n.max() == 5
    present = np.arange(ds.sizes["branch"])[None, :] < n[:, None]
    assert np.all(np.isnan(ds.photons.values[~present]))
    assert not np.any(np.isnan(ds.photons.values[present]))
    assert not np.any(ds.stable.values[~present])
    # branches ascend in q_s
    q = ds.displacement.values
    assert np.all(np.diff(q, axis=1)[present[:, 1:]] > 0)


def test_revival_factor_is_one_for_the_ideal_device():
    ds = sde_com.sweep(detuning=np.linspace(-1, 3, 201), J=[0.0, 7.6e7], Omega=[0.0, 2.3e4])
    assert float(ds.revival.sel(J=0.0, Omega=0.0)) == 1.0
    # backscattering at rest lowers it (Fig. 3(a)); the spin raises it again (Fig. 3(b))
    at_rest = float(ds.revival.sel(J=7.6e7, Omega=0.0))
    spun = float(ds.revival.sel(J=7.6e7, Omega=2.3e4))
    assert at_rest < 0.5 < spun
    assert spun / at_rest == pytest.approx(2.5, rel=0.1)  # "enhanced ~2.5 times" (paper, Fig. 3)


def test_sweep_rejects_bad_parameters():
    with pytest.raises(ValueError, match="unknown parameter"):
        sde_com.sweep(detuning=1.0, spin=3.0)
    with pytest.raises(ValueError, match="direction must be one of"):
        sde_com.sweep(direction=["ccw", "up"])
    with pytest.raises(ValueError, match="mass must be > 0"):
        sde_com.sweep(mass=[1e-11, -1.0])
    with pytest.raises(ValueError, match="detuning must be finite"):
        sde_com.sweep(detuning=[0.0, float("nan")])
