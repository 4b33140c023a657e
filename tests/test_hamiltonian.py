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
    ("1j*w*dag(a)*a", [], r"not Hermitian: the term dag\(a\)\*a is its own conjugate, so its coefficient must be "
                          r"real, got 0\+1j"),
    ("w*a*dag(b) + 2*w*dag(a)*b", [], r"not Hermitian: the term dag\(b\)\*a has the coefficient 1\+0j, but its "
                                     r"conjugate dag\(a\)\*b has 2\+0j \(it must be 1-0j\)"),
    ("omga*dag(a)*a", [], r"unknown name 'omga' \(did you mean 'omega'\?\)"),
    ("w*dag(a)*a", [dict(kind="lindblad", operator="a*a", rate=1.0)], r"a\*a makes the jump operator nonlinear"),
    ("w*dag(a)*a", [dict(kind="thermal", mode="z", rate=1.0)], r"dissipators\[0\].mode must be one of \['a', 'b'\]"),
    ("__import__('os').system('true')", [], r"calls are dag\(mode\) or one of"),
    ("w*dag(a)*a + a.real", [], r"Attribute .* is not allowed"),
    ("(w*dag(a)*a)**16", [], r"a product of 32 ladder operators"),
    ("w**10**10", [], r"powers are integers of at most 16"),
    ("(" * 200 + "w" + ")" * 200, [], r"nests parentheses 200 deep"),
    ("w*dag(a)*a" + " + w*dag(a)*a" * 2000, [], r"characters long; at most 10000"),
])
def test_refusals_name_the_offending_term(hamiltonian, dissipators, message):
    with pytest.raises(UserError, match=message):
        HamiltonianSystem(["a", "b"], hamiltonian, dissipators, dict(w=1.0, omega=1.0))


def test_the_single_cavity_written_as_a_hamiltonian_gives_its_matrices():
    """Vitali et al.'s cavity at its default point, written as H = Δ a†a + ω_m m†m − (G* a + G a†)(m + m†)/2
    (G = √2 G₀ α_s, the linearised radiation pressure), the cavity damped into vacuum at the energy rate 2κ
    (κ: its amplitude rate) and the mirror by the Brownian bath (γ_m, n̄)."""
    cavity = sde_com.get_system("single_cavity")
    branch = cavity.branches({})[0]
    r = cavity._rates({})
    g = math.sqrt(2) * r["G0"] * branch.mean_field["alpha"]
    s = HamiltonianSystem(  # G = gx + i gy: a parameter is real
        ["a", "m"], "delta*dag(a)*a + wm*dag(m)*m - ((gx - 1j*gy)*a + (gx + 1j*gy)*dag(a))*(m + dag(m))/2",
        [dict(kind="thermal", mode="a", rate="2*kappa"), dict(kind="brownian", mode="m", rate="gm", n="nth")],
        dict(delta=branch.mean_field["delta_eff"], wm=r["omega_m"], kappa=r["kappa"], gm=r["gamma_m"],
             nth=r["n_thermal"], gx=g.real, gy=g.imag))
    A, D = s.matrices()
    scale = np.abs(branch.drift).max()  # rounding of the largest rate, normwise
    np.testing.assert_allclose(A, branch.drift, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(D, branch.diffusion, rtol=1e-14, atol=0)


def test_the_python_builders_write_the_same_system_as_the_strings():
    from sde_com.hamiltonian import brownian, dag, ladder, lindblad, sqrt, squeezed, symbols, thermal

    a, b = ladder("a", "b")
    delta, wm, g, kappa = symbols("delta", "wm", "g", "kappa")
    built = HamiltonianSystem(
        [a, b], -delta * dag(a) * a + wm * dag(b) * b - g * (a + dag(a)) * (b + dag(b)) + 0.25j * (dag(a)**2 - a**2),
        [thermal(a, kappa, port=True), brownian(b, 1e-3, 20.0), squeezed(b, 0.01, 0.5, -0.25),
         lindblad(a - 2 * b / sqrt(kappa), 0.1)], dict(delta=-1.0, wm=1.0, g=0.1, kappa=0.5))
    written = HamiltonianSystem(
        ["a", "b"], "-delta*dag(a)*a + wm*dag(b)*b - g*(a + dag(a))*(b + dag(b)) + 0.25j*(dag(a)**2 - a**2)",
        [dict(kind="thermal", mode="a", rate="kappa", port=True), dict(kind="brownian", mode="b", rate=1e-3, n=20.0),
         dict(kind="squeezed", mode="b", rate=0.01, n=0.5, m=-0.25),
         dict(kind="lindblad", operator="a - 2*b/sqrt(kappa)", rate=0.1)], dict(delta=-1.0, wm=1.0, g=0.1, kappa=0.5))
    for params in ({}, dict(g=0.3, kappa=2.0)):
        for x, y in zip(built.matrices(**params), written.matrices(**params), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-15, atol=1e-17)  # the same sums, maybe in another order
    assert built.output_ports({}) == written.output_ports({}) == {"a": 0.25}  # the port's amplitude rate γ/2
    with pytest.raises(UserError, match="dag takes a mode"):
        dag(g)


def test_initial_thermal_takes_each_modes_rate_weighted_bath_occupation():
    s = HamiltonianSystem(["a", "b", "c"], "w*dag(a)*a",
                          [dict(kind="thermal", mode="a", rate=1.0, n=2.0), dict(kind="brownian", mode="a", rate=3.0,
                                                                                 n=10.0),
                           dict(kind="squeezed", mode="b", rate=1.0, n=4.0, m=1.0),
                           dict(kind="lindblad", operator="c", rate=1.0)], dict(w=1.0))
    # a: (1·2 + 3·10)/4 = 8 (the thermal state both baths together take a mode to); b: 4; c: vacuum
    np.testing.assert_allclose(np.diag(s.thermal_covariance({})), [8.5, 8.5, 4.5, 4.5, 0.5, 0.5])


HAMILTONIAN_SCENARIO = """
title = "Optomechanics written as a Hamiltonian"
[system]
modes = ["a", "b"]
hamiltonian = "-Delta*dag(a)*a + wm*dag(b)*b - G*(a + dag(a))*(b + dag(b))"
parameters = { Delta = -1.0, wm = 1.0, G = 0.1, kappa = 0.5, gm = 1e-3, nth = 10.0 }
time_scale = "wm"
[[system.dissipators]]
kind = "thermal"
mode = "a"
rate = "kappa"
port = true
[[system.dissipators]]
kind = "brownian"
mode = "b"
rate = "gm"
n = "nth"
"""


def test_a_scenario_by_hamiltonian_sweeps_its_parameters_each_point_with_its_own_stability():
    """[model] sweeps the coupling and the detuning of a system written as a Hamiltonian: each point's E_N
    and stability are those of the point's own (A, D) (Lyapunov, Routh–Hurwitz), and ω_ref is ω_m."""
    from conftest import run_text

    ds = run_text(HAMILTONIAN_SCENARIO + "[model]\nG = [0.05, 0.2, 0.45]\nDelta = [-1.0, 1.0]\n")
    scenario = sde_com.parse_scenario(HAMILTONIAN_SCENARIO)
    system = scenario.system
    assert system.reference_rate({}) == 1.0
    for G in (0.05, 0.2, 0.45):
        for delta in (-1.0, 1.0):
            A, D = system.matrices(G=G, Delta=delta)
            point = ds.sel(G=G, Delta=delta).isel(branch=0)
            stable = bool(np.all(np.linalg.eigvals(A).real < 0))
            assert bool(point.stable) == stable
            if stable:
                V = lyapunov_covariance_reference(A, D)
                assert float(point.logneg.sel(pair="a-b")) == pytest.approx(sde_com.logneg(V), rel=1e-9, abs=1e-12)
            else:
                assert np.isnan(float(point.logneg.sel(pair="a-b")))
    assert int(ds.stable.sum()) == 3  # the red side (Δ = −ω_m) is stable at these G; the blue side is not
    assert ds["G"].attrs["units"] == "1"  # a parameter's unit: "1" unless [system] units says
    text = HAMILTONIAN_SCENARIO.replace('time_scale = "wm"', 'time_scale = "wm"\nunits = { G = "rad/s" }')
    with_units = run_text(text + "[model]\nG = [0.05, 0.2]\n")
    assert with_units["G"].attrs["units"] == "rad/s"
    assert "Hamiltonian" not in ds.attrs["system"] and "dag(a)" in ds.attrs["system_definition"]


@pytest.mark.parametrize("change, message", [
    (("hamiltonian = \"-Delta*dag(a)*a", "hamiltonian = \"-Delta*dag(a)*a + c*a**2 + 0.5*dag(a)**2"),
     r"at the grid point c = 0\.7: system\.hamiltonian is not Hermitian: the term a\*a has the coefficient "
     r"0\.7\+0j, but its conjugate dag\(a\)\*dag\(a\) has 0\.5\+0j"),
    (("- G*(a", "- G2*(a"), r"unknown name 'G2' \(did you mean 'G'\?\): neither a mode \['a', 'b'\] nor a parameter "
                            r"with a default .*give every parameter its default in system\.parameters"),
    (("- G*(a + dag(a))*(b + dag(b))", "- G*dag(a)*a*(b + dag(b))"),
     r"the term dag\(a\)\*a\*b is of degree 3.*linearise it around the mean field"),
    (("- G*(a + dag(a))*(b + dag(b))", "- G*(a + dag(a))"), r"the linear term a moves the mean field"),
    (('rate = "gm"', 'rate = "gm"\nm = 0.5'), r"dissipators\[1\]\.m has no meaning with kind = 'brownian'"),
    (('kind = "brownian"', 'kind = "squeezed"\nm = 11.0'),
     r"dissipators\[1\]: n = 10, m = 11\+0j .*\|m\|² <= n\(n \+ 1\)"),
    (('kind = "brownian"\nmode = "b"\nrate = "gm"\nn = "nth"', 'kind = "lindblad"\noperator = "b*b"\nrate = "gm"'),
     r"b\*b makes the jump operator nonlinear"),
    (('port = true', 'port = true\nn = 1.0'), r"port: an output port is a vacuum bath"),
    (('time_scale = "wm"', 'time_scale = "-wm"'), r"time_scale = -1 .*ω_ref must be a finite rate > 0"),
    (('modes = ["a", "b"]', 'modes = ["a", "b"]\ndrift = [[1.0]]'),
     r"\['drift'\] belong to a system given by its matrices"),
    (('hamiltonian = "', 'hamiltonian = "__import__(\'os\').system(\'touch pwned\') + '),
     r"calls are dag\(mode\) or one of"),
])
def test_a_bad_hamiltonian_scenario_is_refused_before_any_work(tmp_path, capsys, change, message):
    from conftest import assert_refused

    old, new = change
    assert old in HAMILTONIAN_SCENARIO
    text = HAMILTONIAN_SCENARIO.replace(old, new, 1).replace("G = 0.1,", "G = 0.1, c = 0.5,")
    assert_refused(tmp_path, capsys, text + "[model]\nc = [0.5, 0.7]\n", message)
    assert not (tmp_path / "pwned").exists()


def test_a_port_dissipator_lets_detect_run_from_a_thermal_start():
    """[detect] on the vacuum bath marked as a port, from initial = "thermal" (each mode at its bath's n):
    the record of mode a (filtered by the Kalman filter of [[measure]]'s model), filtered-mode E_N with the
    mechanics (the detection statistics themselves are tested on the built-in systems, tests/test_detection.py)."""
    from conftest import run_text

    ds = run_text(HAMILTONIAN_SCENARIO + """
[simulate]
method = "em"
dt = 0.01
duration = 100.0
trajectories = 4
traces = 4
seed = 3
initial = "thermal"
[detect]
segment = 512
filter_bandwidths = [0.1, 1.0]
""")
    assert ds.attrs["mode"] == "a" and ds.attrs["partner"] == "b"
    assert ds.record.shape == (4, 10000, 1) and np.all(np.isfinite(ds.filtered_logneg))
    # the record is [[measure]]'s normalisation: the Kalman filter of a perfect homodyne of a takes it, and its
    # innovations are white of unit variance (measured 1.004 ± 0.007, lag-1 −0.007 ± 0.005), up to 4σ and the
    # Euler–Maruyama record's O(dt) departure from the exact model's, at most the fastest rate of A (ω_m = 1)
    # times dt = 0.01 (a record off by √2, as
    # [detect]'s former output-field normalisation is, gives 2 or 0.5). This checks the scale only: the sign of
    # the record's noise against the port's input is pinned by the vacuum cavity's shot-noise spectrum
    # (tests/test_detection.py) and (M2)'s by the conditional ensembles (tests/test_measurement.py)
    from sde_com.runs.scenario import parse_scenario
    from sde_com.simulation.conditional import filter_record_file

    scenario = parse_scenario(HAMILTONIAN_SCENARIO)
    out = filter_record_file(ds, [{"mode": "a"}], initial="thermal", system=scenario.system,
                             **dict(scenario.parameters))
    assert abs(out.innovation_variance.item() - 1) < 4 * out.innovation_variance_err.item() + 0.01
    assert abs(out.innovation_lag1.item()) < 4 * out.innovation_lag1_err.item() + 0.01


def test_a_port_dissipator_gives_output_ports_and_the_system_pickles():
    import pickle

    system = sde_com.parse_scenario(HAMILTONIAN_SCENARIO).system
    assert "output_ports" in system.capabilities and system.output_ports({"kappa": 0.8}) == {"a": 0.4}
    again = pickle.loads(pickle.dumps(system))  # a Dask worker's copy: made again from its definition
    assert again.definition() == system.definition()
    np.testing.assert_array_equal(again.matrices(G=0.3)[0], system.matrices(G=0.3)[0])


def test_from_qutip_gives_the_system_of_the_same_master_equation():
    """A QuTiP model (truncated Fock space; c = √γ L) converted: the same (A, D) as the strings, a thermal
    bath recognised from its two collapse operators, and a cubic term refused by name."""
    qutip = pytest.importorskip("qutip")
    from sde_com.hamiltonian import from_qutip

    levels = 7
    a = qutip.tensor(qutip.destroy(levels), qutip.qeye(levels))
    b = qutip.tensor(qutip.qeye(levels), qutip.destroy(levels))
    H = 1.0 * a.dag() * a + 0.8 * b.dag() * b - 0.1 * (a + a.dag()) * (b + b.dag()) + 0.3j * (a.dag() * b.dag()
                                                                                               - a * b)
    c_ops = [math.sqrt(0.5 * 1.4) * a, math.sqrt(0.5 * 0.4) * a.dag(), math.sqrt(0.3) * (a + 0.2j * b)]
    converted = from_qutip(H, c_ops, {"a": a, "b": b})
    written = HamiltonianSystem(
        ["a", "b"], "dag(a)*a + 0.8*dag(b)*b - 0.1*(a + dag(a))*(b + dag(b)) + 0.3j*(dag(a)*dag(b) - a*b)",
        [dict(kind="thermal", mode="a", rate=0.5, n=0.4), dict(kind="lindblad", operator="a + 0.2j*b", rate=0.3)])
    for x, y in zip(converted.matrices(), written.matrices(), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-13)  # the fit's rounding (cut at 1e-13 of the scale)
    assert converted.definition()["dissipators"][0]["kind"] == "thermal"
    np.testing.assert_allclose(np.diag(converted.thermal_covariance({}))[:2], [0.9, 0.9], rtol=1e-12)
    with pytest.raises(UserError, match=r"the term dag\(a\)\*dag\(b\)\*a of degree 3"):
        from_qutip(H + 0.01 * a.dag() * a * (b + b.dag()), c_ops, {"a": a, "b": b})
    with pytest.raises(UserError, match=r"degree four or more"):
        from_qutip(H + 0.01 * (a.dag() * a) ** 2, c_ops, {"a": a, "b": b})


def test_the_json_schema_takes_a_hamiltonian_scenario_and_its_own_parameters():
    """Editors validate with the shipped JSON Schema: a [system] by Hamiltonian and [model] keys that are its
    parameters pass; the same [model] key without the Hamiltonian (a typo of a built-in's key) does not."""
    import tomllib

    jsonschema = pytest.importorskip("jsonschema")
    from sde_com.runs.schema import json_schema

    validator = jsonschema.Draft7Validator(json_schema())
    validator.validate(tomllib.loads(HAMILTONIAN_SCENARIO + "[model]\nG = { start = 0.0, stop = 0.4, num = 5 }\n"))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(tomllib.loads("[model]\nG = 0.1\n"))
    with pytest.raises(jsonschema.ValidationError):  # a dissipator's unknown key
        validator.validate(tomllib.loads(HAMILTONIAN_SCENARIO.replace('port = true', 'prot = true')))


@pytest.mark.parametrize("hamiltonian, message", [
    ("1e15 + 1j*w*a*a", r"not Hermitian: the term a\*a has the coefficient 0\+1j"),  # a constant hides nothing
    ("1e15 + w*a*a*a", r"the term a\*a\*a is of degree 3"),
    ("1e13*w*dag(a)*a + a*a*a", r"the term a\*a\*a is of degree 3"),
    ("1e308*10*dag(a)*a", r"is not finite at .* overflows or is nan"),
    ("1" + "+1" * 600 + "+w*dag(a)*a + w*a*a*a", r"the term a\*a\*a is of degree 3"),  # a long sum: no recursion
    ("-" * 700 + "w*dag(a)*a + w*a", r"the linear term a moves the mean field"),
])
def test_refusals_are_not_hidden_by_scale_length_or_overflow(hamiltonian, message):
    with pytest.raises(UserError, match=message):
        HamiltonianSystem(["a"], hamiltonian, [dict(kind="thermal", mode="a", rate=1.0)], dict(w=1.0))


def test_what_cancels_is_honoured_however_it_is_written():
    """Normal ordering comes before the degree check: (a a† − a† a)² a† a is a† a; the square root of a negative
    parameter is +i√x (not the other side of the branch cut: −x is not −x − 0j)."""
    s = HamiltonianSystem(["a"], "w*(a*dag(a) - dag(a)*a)**2*dag(a)*a", [dict(kind="thermal", mode="a", rate=1.0)],
                          dict(w=2.0))
    np.testing.assert_allclose(s.matrices()[0], [[-0.5, 2.0], [-2.0, -0.5]])
    squeezed = HamiltonianSystem(["a"], "0", [dict(kind="squeezed", mode="a", rate=1.0, n=1.0, m="sqrt(-x)")],
                                 dict(x=0.25))
    assert squeezed.matrices()[1][0, 1] == pytest.approx(0.5)  # γ Im m with m = +0.5i


@pytest.mark.parametrize("modes, message", [(["a", "pi"], r"\['pi'\] are names of the grammar"),
                                            (["lambda"], r"\['lambda'\] are names of the grammar"),
                                            ([f"m{i}" for i in range(101)], r"lists 101 modes; at most 100")])
def test_mode_names_and_counts_are_bounded(modes, message):
    with pytest.raises(UserError, match=message):
        HamiltonianSystem(modes, "0")


def test_a_matrix_system_refuses_a_hamiltonian_systems_keys(tmp_path, capsys):
    from conftest import assert_refused

    text = ('[system]\nmodes = ["a"]\ndrift = [[-1.0, 0.0], [0.0, -1.0]]\ndiffusion = [[1.0, 0.0], [0.0, 1.0]]\n'
            'units = { w = "s-1" }\n')
    assert_refused(tmp_path, capsys, text, r"\['units'\] belong to a system given by its Hamiltonian")


def test_a_port_may_take_its_occupation_from_a_parameter_that_is_zero():
    s = HamiltonianSystem(["a"], "0", [dict(kind="thermal", mode="a", rate=1.0, n="nn", port=True)], dict(nn=0.0))
    assert s.output_ports({}) == {"a": 0.5}
    with pytest.raises(UserError, match=r"port: an output port is a vacuum bath, but n = 1"):
        s.matrices(nn=1.0)


def test_from_qutip_marks_ports_and_refuses_a_constant_jump():
    qutip = pytest.importorskip("qutip")
    from sde_com.hamiltonian import from_qutip

    a = qutip.destroy(6)
    s = from_qutip(a.dag() * a, [math.sqrt(0.5) * a], {"a": a}, ports=["a"])
    assert s.output_ports({}) == pytest.approx({"a": 0.25})
    with pytest.raises(UserError, match="constant part"):
        from_qutip(a.dag() * a, [qutip.qeye(6)], {"a": a})
