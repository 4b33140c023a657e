"""Systems written as a Hamiltonian and dissipators (``physics.hamiltonian``): each dissipator and Hamiltonian
against closed forms, the built-in resonator written out as a Hamiltonian against its own matrices, an
independent truncated Fock-space Liouvillian against the Lyapunov V, and the refusals."""

import math

import numpy as np
import pytest

import sde_com
from sde_com.errors import UserError
from sde_com.physics.hamiltonian import HamiltonianSystem
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.resonator import Device, operating_points

# Lyapunov solves of these 2–6-dimensional, well-conditioned systems agree with closed forms to rounding
RTOL = 1e-12


def steady(system, **params):
    return lyapunov_covariance_reference(*system.matrices(**params))


@pytest.mark.parametrize("n", [0.0, 0.5, 3.0, 270.0])
def test_a_mode_damped_by_a_thermal_bath_relaxes_to_its_occupation(n):
    s = HamiltonianSystem(["a"], "w*dag(a)*a", [dict(kind="thermal", mode="a", rate="g", n=n)], dict(w=1e3, g=7.0))
    A, D = s.matrices()
    np.testing.assert_allclose(np.diag(A), [-3.5, -3.5])  # the amplitude decays at half the energy rate
    V = steady(s)
    assert (V[0, 0] + V[1, 1] - 1) / 2 == pytest.approx(n, rel=RTOL, abs=RTOL)  # ⟨a†a⟩ = (Vxx + Vpp − 1)/2


def test_the_degenerate_parametric_amplifier_squeezes_p_and_antisqueezes_x():
    """H = iχ(a†² − a²)/2 with κ D[a]: ẋ = (χ − κ/2) x, ṗ = −(χ + κ/2) p, D = κ/2 (vacuum), so
    V_xx = (κ/4)/(κ/2 − χ), V_pp = (κ/4)/(κ/2 + χ)."""
    kappa = 2.0
    s = HamiltonianSystem(["a"], "1j*chi*(dag(a)**2 - a**2)/2", [dict(kind="thermal", mode="a", rate=kappa)],
                          dict(chi=0.3))
    for chi in (0.1, 0.3, 0.9):
        V = steady(s, chi=chi)
        np.testing.assert_allclose(np.diag(V), [kappa / 4 / (kappa / 2 - chi), kappa / 4 / (kappa / 2 + chi)],
                                   rtol=RTOL)
        assert V[0, 1] == pytest.approx(0.0, abs=RTOL)


def test_the_non_degenerate_amplifier_entangles_its_modes_as_ln_1_plus_2chi_over_kappa():
    """H = iχ(a†b† − ab), both modes damped at the energy rate κ: E_N = ln(1 + 2χ/κ); and a sweep of χ through
    the seam gives the same E_N over its `pair`."""
    s = HamiltonianSystem(["a", "b"], "1j*chi*(dag(a)*dag(b) - a*b)",
                          [dict(kind="thermal", mode="a", rate="kappa"), dict(kind="thermal", mode="b", rate="kappa")],
                          dict(chi=0.1, kappa=1.0), time_scale="kappa")
    chis = [0.05, 0.2, 0.4]
    ds = sde_com.sweep(system=s, chi=chis)
    np.testing.assert_allclose(ds["logneg"].sel(pair="a-b").isel(branch=0).values, np.log1p(2 * np.array(chis)),
                               rtol=1e-10)
    assert ds.attrs["system"] == "hamiltonian"


def test_a_pure_squeezed_bath_leaves_a_squeezed_vacuum():
    """n = sinh²r, m = e^{iφ} sinh r cosh r: the bath's state is pure, and so is the mode's steady state:
    det V = 1/4, eigenvalues e^{±2r}/2."""
    r, phi = 0.7, 0.4
    n, m = math.sinh(r) ** 2, complex(math.cos(phi), math.sin(phi)) * math.sinh(r) * math.cosh(r)
    s = HamiltonianSystem(["a"], "0*dag(a)*a", [dict(kind="squeezed", mode="a", rate=1.0, n=n, m="mr + 1j*mi")],
                          dict(mr=m.real, mi=m.imag))
    V = steady(s)
    assert np.linalg.det(V) == pytest.approx(0.25, rel=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(V), [math.exp(-2 * r) / 2, math.exp(2 * r) / 2], rtol=1e-12)
    assert (V[0, 0] + V[1, 1] - 1) / 2 == pytest.approx(n, rel=1e-12)  # ⟨a†a⟩ = n
    with pytest.raises(UserError, match=r"\|m\|² <= n\(n \+ 1\)"):
        HamiltonianSystem(["a"], "0*dag(a)*a", [dict(kind="squeezed", mode="a", rate=1.0, n=0.1, m=1.0)])


def test_the_spinning_resonator_written_as_a_hamiltonian_gives_its_matrices():
    """Eq. (6) with Eq. (7)'s branch, written as physicists write it: H = Δ̃_U a†a + Δ̃_V b†b + J(a†b + b†a)
    + ω_m c†c − (G_U* a + G_U a†)(c + c†)/2 − (G_V* b + G_V b†)(c + c†)/2 (the mechanics c: q = (c + c†)/√2),
    the optical modes damped into vacuum at the energy rate 2κ, the mechanics by the Brownian bath."""
    device = Device(J=2e6, Omega=1e4)
    branch = operating_points(device, 0.75)[0]
    g = math.sqrt(2) * device.G0
    gu, gv = g * branch.alpha_u, g * branch.alpha_v
    hamiltonian = ("du*dag(a)*a + dv*dag(b)*b + J*(dag(a)*b + dag(b)*a) + wm*dag(c)*c"
                   " - (conj(gu)*a + gu*dag(a))*(c + dag(c))/2 - (conj(gv)*b + gv*dag(b))*(c + dag(c))/2")
    mf = sde_com.resonator.operating_points(device, 0.75)[0]
    shift = device.kappa * branch.q_s * device.G0 / device.kappa  # Δ̃_j = Δ_j − G₀ q_s
    from sde_com.physics.resonator.device import mode_detunings

    du, dv = mode_detunings(0.75 * device.omega_m, device.sagnac_shift, "ccw")
    s = HamiltonianSystem(
        ["a", "b", "c"], hamiltonian.replace("gu", "(gux + 1j*guy)").replace("gv", "(gvx + 1j*gvy)"),
        [dict(kind="thermal", mode="a", rate=2 * device.kappa), dict(kind="thermal", mode="b", rate=2 * device.kappa),
         dict(kind="brownian", mode="c", rate=device.gamma_m, n=device.n_thermal)],
        dict(du=du - shift, dv=dv - shift, J=device.J, wm=device.omega_m, gux=gu.real, guy=gu.imag, gvx=gv.real,
             gvy=gv.imag))
    A, D = s.matrices()
    scale = np.abs(mf.drift).max()  # the rates span 10 decades: rounding of the largest, normwise
    np.testing.assert_allclose(A, mf.drift, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(D, mf.diffusion, rtol=1e-14, atol=0)


def test_normal_ordering_makes_cancelling_terms_cancel():
    """a a† − a† a = 1 (a constant: no dynamics); (a + a†)² − a² − a†² − 2a†a = 1 likewise."""
    for h in ("w*(a*dag(a) - dag(a)*a)", "w*((a + dag(a))**2 - a**2 - dag(a)**2 - 2*dag(a)*a)"):
        s = HamiltonianSystem(["a"], h, [dict(kind="thermal", mode="a", rate=1.0)], dict(w=5.0))
        np.testing.assert_array_equal(s.matrices()[0], -0.5 * np.eye(2))


def _fock_steady_state(H, jumps, dim):
    """ρ_ss of dρ/dt = −i[H, ρ] + Σ D[L]ρ = 0 with Tr ρ = 1 (dense, vectorised column-major:
    vec(AXB) = (Bᵀ ⊗ A) vec X; one equation of the singular Liouvillian replaced by the trace)."""
    eye = np.eye(dim)
    liouvillian = -1j * (np.kron(eye, H) - np.kron(H.T, eye))
    for L in jumps:
        LdL = L.conj().T @ L
        liouvillian += np.kron(L.conj(), L) - 0.5 * (np.kron(eye, LdL) + np.kron(LdL.T, eye))
    liouvillian[0] = 0.0
    liouvillian[0, np.arange(dim) * (dim + 1)] = 1.0  # Tr ρ: the diagonal of the column-major vec
    rhs = np.zeros(dim * dim, dtype=complex)
    rhs[0] = 1.0
    return np.linalg.solve(liouvillian, rhs).reshape(dim, dim, order="F")


def _fock_covariance(g, chi, ga, na, gl, levels):
    """V of the two-mode test system from its master equation in a Fock space of ``levels`` per mode."""
    lower = np.diag(np.sqrt(np.arange(1, levels)), 1)
    a, b = np.kron(lower, np.eye(levels)), np.kron(np.eye(levels), lower)
    H = g * (a.conj().T @ b + b.conj().T @ a) + 1j * chi * (a.conj().T @ b.conj().T - a @ b)
    jumps = [math.sqrt(ga * (na + 1)) * a, math.sqrt(ga * na) * a.conj().T, math.sqrt(gl) * (a + 0.3 * b)]
    rho = _fock_steady_state(H, jumps, levels**2)
    quads = [(m + m.conj().T) / math.sqrt(2) for m in (a,)] + [(a - a.conj().T) / (1j * math.sqrt(2))]
    quads += [(b + b.conj().T) / math.sqrt(2), (b - b.conj().T) / (1j * math.sqrt(2))]
    return np.array([[np.trace(rho @ (x @ y + y @ x)).real / 2 for y in quads] for x in quads])


def test_a_truncated_fock_space_liouvillian_agrees_with_the_lyapunov_covariance():
    """Two modes, a beam splitter g and a two-mode squeezing χ, a thermal bath on a, and a jump operator
    L = a + 0.3 b (into vacuum): the steady state of the master equation in a truncated Fock space against V
    of the same description. The truncation error falls about tenfold per level at these occupations (below
    0.1; measured 5.5e-5, 5.3e-6, 4.8e-7 at 5, 6, 7 levels): at 7 levels it must be below 1e-6 and below a third
    of 6 levels' (a wrong map would leave a difference that does not shrink with the levels)."""
    g, chi, ga, na, gl = 0.3, 0.02, 1.0, 0.05, 0.8
    s = HamiltonianSystem(["a", "b"], "g*(dag(a)*b + dag(b)*a) + 1j*chi*(dag(a)*dag(b) - a*b)",
                          [dict(kind="thermal", mode="a", rate=ga, n=na),
                           dict(kind="lindblad", operator="a + 0.3*b", rate=gl)], dict(g=g, chi=chi))
    V = steady(s)
    err6, err7 = (np.abs(_fock_covariance(g, chi, ga, na, gl, levels) - V).max() for levels in (6, 7))
    assert err7 < 1e-6 and err7 < err6 / 3, (err6, err7)
    assert max(V[0, 0] + V[1, 1], V[2, 2] + V[3, 3]) < 1.2  # ⟨a†a⟩, ⟨b†b⟩ < 0.1: the premise


@pytest.mark.parametrize("hamiltonian, dissipators, message", [
    ("w*dag(a)*a*a + w*dag(a)*dag(a)*a", [], r"the term dag\(a\)\*a\*a is of degree 3.*linearise"),
    ("w*(a + dag(a))", [], r"the linear term a moves the mean field"),
    ("1j*w*dag(a)*a", [], r"not Hermitian: the term dag\(a\)\*a has the coefficient 0\+1j, but its conjugate "
                          r"dag\(a\)\*a has 0\+1j \(it must be 0-1j\)"),
    ("omga*dag(a)*a", [], r"unknown name 'omga' \(did you mean 'omega'\?\)"),
    ("w*dag(a)*a", [dict(kind="lindblad", operator="a*a", rate=1.0)], r"a\*a makes the jump operator nonlinear"),
    ("w*dag(a)*a", [dict(kind="thermal", mode="z", rate=1.0)], r"dissipators\[0\].mode must be one of \['a'\]"),
    ("__import__('os').system('true')", [], r"calls are dag\(mode\) or one of"),
    ("w*dag(a)*a + a.real", [], r"Attribute .* is not allowed"),
    ("(w*dag(a)*a)**16", [], r"more than 4 ladder operators"),
    ("w**10**10", [], r"powers are integers of at most 16"),
    ("(" * 200 + "w" + ")" * 200, [], r"nests parentheses 200 deep"),
    ("w*dag(a)*a" + " + w*dag(a)*a" * 2000, [], r"characters long; at most 10000"),
])
def test_refusals_name_the_offending_term(hamiltonian, dissipators, message):
    with pytest.raises(UserError, match=message):
        HamiltonianSystem(["a"], hamiltonian, dissipators, dict(w=1.0, omega=1.0))
