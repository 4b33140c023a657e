"""The periodic steady state of modulated systems ([periodic]; sde_com.physics.floquet, Eqs. (P1)–(P4)).

Against the unmodulated Lyapunov solution, against the moment equation integrated over many periods, against
the first instability tongue of Mathieu's equation, and the refusals of what it cannot run.
"""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import sde_com
from sde_com.physics.floquet import Modulation, periodic_state

Z2 = np.zeros((2, 2))


def test_an_unmodulated_system_has_its_lyapunov_state_at_every_phase():
    """Zero modulation depth: V(φ) is the Lyapunov V of Eq. (11) at every phase (to 1e-12 of V: the same
    equation solved two ways, both to rounding), and the multipliers are the eigenvalues of e^{A T}."""
    A, D = np.array([[-0.1, 1.0], [-1.0, -0.1]]), np.eye(2) * 0.3
    state = periodic_state(Modulation(1.7, A, Z2, Z2, D, Z2, Z2), samples=32)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    np.testing.assert_allclose(state.cov, np.broadcast_to(V, state.cov.shape), rtol=0, atol=1e-12 * np.abs(V).max())
    expected = np.sort(np.abs(np.linalg.eigvals(scipy.linalg.expm(A * 2 * math.pi / 1.7))))[::-1]
    np.testing.assert_allclose(np.abs(state.multipliers), expected, rtol=1e-12)
    assert state.growth_rate == pytest.approx(-0.1, rel=1e-10)


def _modulated() -> Modulation:
    """Two coupled damped modes, both drift and diffusion modulated (cos and sin parts), stable."""
    rng = np.random.default_rng(5)
    A = np.array([[-0.2, 1.0, 0.1, 0.0], [-1.0, -0.2, 0.0, 0.1], [0.1, 0.0, -0.3, 1.4], [0.0, 0.1, -1.4, -0.3]])
    Ac, As = 0.15 * rng.standard_normal((4, 4)), 0.1 * rng.standard_normal((4, 4))
    D = np.diag([0.4, 0.4, 1.0, 1.0])
    Dc = np.diag([0.1, -0.1, 0.3, 0.2])
    Ds = np.zeros((4, 4))
    Ds[0, 2] = Ds[2, 0] = 0.05
    return Modulation(1.3, A, Ac, As, D, Dc, Ds)


def test_the_periodic_state_is_where_the_moment_equation_settles():
    """dV/dt = A(t) V + V A(t)ᵀ + D(t) (Eq. (P1)) integrated from V = 0 over 20 periods (DOP853, relative 1e-13:
    the transient, slower than e^{−0.4 t}, is down to 1e-18 of V), then sampled over one more at the 64 phases:
    the periodic state to 1e-10 relative (the Magnus integration's estimated error is 1e-11, the integrator's
    accumulated error of the same order)."""
    mod = _modulated()
    state = periodic_state(mod, samples=64)
    assert state.stable and state.error < 1e-11

    def rate(t, v):
        A, D = mod.at(t)
        V = v.reshape(4, 4)
        return (A @ V + V @ A.T + D).ravel()

    T = mod.period
    times = 20 * T + T * np.arange(64) / 64
    sol = scipy.integrate.solve_ivp(rate, (0.0, times[-1]), np.zeros(16), method="DOP853", t_eval=times,
                                    rtol=1e-13, atol=1e-16)
    V = sol.y.T.reshape(64, 4, 4)
    np.testing.assert_allclose(state.cov, V, rtol=0, atol=1e-10 * np.abs(V).max())


W0, GAMMA = 1.0, 1e-3  # the oscillator's frequency and its (velocity) damping rate


def _mathieu(depth: float, frequency: float) -> Modulation:
    """ẍ + γẋ + ω₀²(1 + ε cos Ωt) x = 0 as (x, p) = (x, ẋ/ω₀): A(t) = [[0, ω₀], [−ω₀(1 + ε cos Ωt), −γ]]."""
    A = np.array([[0.0, W0], [-W0, -GAMMA]])
    Ac = np.array([[0.0, 0.0], [-W0 * depth, 0.0]])
    return Modulation(frequency, A, Ac, Z2, np.diag([0.0, 2 * GAMMA]), Z2, Z2)


@pytest.mark.parametrize("depth", [0.05, 0.1])
def test_the_first_mathieu_tongue_is_where_the_theory_puts_it(depth):
    """Mathieu's equation ẍ + ω₀²(1 + ε cos Ωt) x = 0 near Ω = 2ω₀: with x = a cos(Ωt/2) + b sin(Ωt/2) and the
    slow amplitudes averaged over the fast phase (first order in ε), ȧ = −(δ + εω₀/4) b, ḃ = (δ − εω₀/4) a with
    δ = Ω/2 − ω₀ (the rotating frame's detuning), so (a, b) grow as e^{μt}, μ = √((εω₀/4)² − δ²): unstable for
    |Ω − 2ω₀| < εω₀/2, the first tongue. Damping γẋ takes γ/2 off every rate. Checked: unstable at 0.8 of the
    half-width on either side, stable at 1.2; at Ω = 2ω₀ the growth rate is εω₀/4 − γ/2 to within ε of
    itself (the theory is first order in ε); a modulated system whose average drift is stable (eigenvalues
    −γ/2 ± iω₀) is reported unstable, without a covariance."""
    half = depth * W0 / 2
    for offset, unstable in ((-1.2, False), (-0.8, True), (0.8, True), (1.2, False)):
        state = periodic_state(_mathieu(depth, 2 * W0 + offset * half), samples=16)
        assert state.stable is not unstable, (offset, state.growth_rate)
    state = periodic_state(_mathieu(depth, 2 * W0), samples=16)
    theory = depth * W0 / 4 - GAMMA / 2
    assert state.growth_rate == pytest.approx(theory, rel=depth)
    assert state.cov is None and np.abs(state.multipliers).max() > 1
    assert np.linalg.eigvals(_mathieu(depth, 2 * W0).drift).real.max() < 0  # the average is stable


MODULATED = """
[system]
modes = ["m"]
drift = [[0.0, 1.0], [-1.0, -0.001]]
diffusion = [[0.0, 0.0], [0.0, 0.002]]
time_scale = 1.0
modulation = { frequency = FREQ, drift_cos = [[0.0, 0.0], [-0.1, 0.0]] }
[periodic]
samples = 16
"""


def test_a_scenario_reports_a_parametrically_unstable_system_and_a_stable_one(tmp_path):
    """Through the CLI, CF-clean: inside the tongue no covariance (NaN), stable false and the growth rate; outside
    a periodic covariance whose E_N (one mode: no pairs) and multipliers are written."""
    from conftest import run_cli
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset

    for freq, stable in (("2.0", False), ("2.3", True)):
        out = tmp_path / f"periodic_{freq}.nc"
        assert run_cli(tmp_path, MODULATED.replace("FREQ", freq), out) == 0
        ds = read_dataset(out)
        assert bool(ds.stable_periodic) is stable
        assert np.all(np.isnan(ds.cov_periodic.values)) is not stable
        assert (float(ds.growth_rate) > 0) is not stable
        assert ds.cov_periodic.dims == ("phase", "row", "col") and ds.phase.attrs["units"] == "rad"
        assert_cf_clean(out)


@pytest.mark.parametrize("text, message", [
    (MODULATED.replace("FREQ", "0.0"), r"system.modulation.frequency must be > 0"),
    (MODULATED.replace("FREQ", "2.0").replace("drift_cos = [[0.0, 0.0], [-0.1, 0.0]]", "drift_cos = [[0.0]]"),
     r"system.modulation.drift_cos must be 2 × 2"),
    (MODULATED.replace("FREQ", "2.0").replace("drift_cos = [[0.0, 0.0], [-0.1, 0.0]]",
                                               "diffusion_cos = [[0.0, 0.0], [0.0, 0.004]]"),
     r"the diffusion D\(t\) is not positive semidefinite during the period: at phase"),
    (MODULATED.replace("FREQ", "2.0").replace("modulation = { frequency = 2.0, drift_cos = [[0.0, 0.0], "
                                               "[-0.1, 0.0]] }\n", ""), r"\[periodic\] needs something periodic: "
                                                                      r"system 'matrix' has no modulation"),
    ('[system]\nname = "single_cavity"\n[periodic]\n', r"\[periodic\] on system 'single_cavity' needs a periodic "
                                                     r"\[drive\] beside it"),
    (MODULATED.replace("FREQ", "2.0").replace("[periodic]\nsamples = 16\n", ""),
     r"a modulated system runs \[periodic\]"),
    (MODULATED.replace("FREQ", "2.0") + "[simulate]\nmethod = 'exact'\ndt = 0.1\nduration = 1.0\n"
                                        "trajectories = 4\n", r"\[periodic\] is a steady state"),
    (MODULATED.replace("FREQ", "2.0").replace("samples = 16", "samples = 2"), r"periodic.samples must be"),
])
def test_what_periodic_cannot_run_is_refused_in_one_line(tmp_path, capsys, text, message):
    from conftest import assert_refused

    assert_refused(tmp_path, capsys, text, message)


def test_a_modulated_matrix_system_regenerates_from_its_definition():
    """The file's system_definition holds the modulation: the system it rebuilds has the same periodic state."""
    system = sde_com.MatrixSystem(["m"], [[0.0, 1.0], [-1.0, -0.01]], [[0.0, 0.0], [0.0, 0.02]], time_scale=1.0,
                                  modulation={"frequency": 2.3, "drift_cos": [[0.0, 0.0], [-0.1, 0.0]]})
    again = sde_com.MatrixSystem(**{k: v for k, v in system.definition().items() if k != "name"})
    a = periodic_state(system.periodic_modulation({}), 16)
    b = periodic_state(again.periodic_modulation({}), 16)
    np.testing.assert_array_equal(a.cov, b.cov)


def _modulated_system(time_scale: float = 1.0) -> sde_com.MatrixSystem:
    """``_modulated`` as a MatrixSystem (rates in s⁻¹; ``time_scale`` ω_ref sets the unit of its run times)."""
    mod = _modulated()
    return sde_com.MatrixSystem(["a", "b"], mod.drift, mod.diffusion, time_scale=time_scale, modulation={
        "frequency": mod.frequency, **{k: getattr(mod, k).tolist() for k in (
            "drift_cos", "drift_sin", "diffusion_cos", "diffusion_sin")}})


# ω_ref = Ω/2π: one period of the modulation is one unit of run time (the [simulate] times below are exact)
UNIT_PERIOD = 1.3 / (2 * math.pi)


def test_an_ensemble_started_in_the_periodic_state_stays_in_it_at_every_phase():
    """``simulate`` of the modulated two-mode system (a [simulate] transient): 4000 trajectories from the periodic
    state at phase 0 (initial = 'steady'), stepped with A(t), D(t) frozen at each step's midpoint (256 steps a
    period: the map's O(dt²) bias, ~1e-5 of V, is far below the ensemble's 2 % error) over two periods, saved at
    16 phases each: ⟨u uᵀ⟩ against the periodic state at every saved phase (33 times × 10 independent entries,
    Bonferroni at a family-wise 1e-3). ``cov_periodic_ref`` (the moment ODE from the periodic V(0), relative 1e-10)
    is the Magnus state at the sampled phases; a state that did not repeat, the unmodulated Lyapunov V, is
    rejected by the same data."""
    from scipy.stats import norm

    settings = sde_com.SimulationSettings(dt=1 / 256, duration=2.0, save_every=1 / 16, trajectories=4000, seed=3,
                                          initial="steady")
    ds = sde_com.simulate(settings, system=_modulated_system(UNIT_PERIOD))
    rows, cols = np.triu_indices(4)
    sim, err, periodic = (ds[v].values for v in ("cov_sim", "cov_sim_err", "cov_periodic_ref"))
    state = periodic_state(_modulated(), 16)
    scale = np.abs(state.cov).max()
    np.testing.assert_allclose(periodic, np.concatenate([state.cov, state.cov, state.cov[:1]]), rtol=0,
                               atol=1e-8 * scale)  # the ODE's rtol 1e-10 over two periods, the Magnus 1e-11
    z = np.abs((sim - periodic) / err)[:, rows, cols]
    bound = float(norm.ppf(1 - 1e-3 / (2 * z.size)))
    assert z.max() < bound, z.max()
    assert float(ds.zscore_periodic_max.max()) == pytest.approx(z.max(), rel=1e-12)
    lyapunov = scipy.linalg.solve_continuous_lyapunov(_modulated().drift, -_modulated().diffusion)
    assert np.abs((sim - lyapunov) / err)[:, rows, cols].max() > bound


TRANSIENT = f"""[system]
modes = ["a", "b"]
drift = {_modulated().drift.tolist()}
diffusion = {_modulated().diffusion.tolist()}
time_scale = {UNIT_PERIOD!r}
modulation = {{ frequency = 1.3, drift_cos = {_modulated().drift_cos.tolist()}, diffusion_cos = {
    _modulated().diffusion_cos.tolist()} }}
[simulate]
dt = 0.0078125
duration = 12.0
save_every = 0.25
trajectories = 64
initial = "zero"
"""


def test_a_transient_from_rest_settles_on_the_periodic_state(tmp_path):
    """Through the CLI, CF-clean: from V = 0 the moment solution (cov_ref) approaches cov_periodic_ref as the
    slowest Floquet rate says (the gap after 12 periods is below e^{2·growth·t} of the start's, times 10 for the
    modes' mixing), and the ensemble follows cov_ref at every saved time (Bonferroni over 49 times × 10 entries)."""
    from conftest import run_cli
    from scipy.stats import norm
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset

    out = tmp_path / "transient.nc"
    assert run_cli(tmp_path, TRANSIENT, out) == 0
    ds = read_dataset(out)
    gap = np.abs(ds.cov_ref - ds.cov_periodic_ref).max(dim=("row", "col")).values
    rate = periodic_state(_modulated_transient(), 16).growth_rate  # per period: time in periods here
    t = ds.time_scaled.values
    assert gap[-1] < 10 * gap[0] * math.exp(2 * rate * t[-1]) and gap[-1] < 1e-6 * gap[0]
    rows, cols = np.triu_indices(4)
    z = np.abs((ds.cov_sim - ds.cov_ref) / ds.cov_sim_err).values[1:][:, rows, cols]  # t = 0: exactly zero
    assert z.max() < norm.ppf(1 - 1e-3 / (2 * z.size))
    assert ds.logneg_periodic_ref.dims == ("time", "pair")
    assert_cf_clean(out)


def _modulated_transient() -> Modulation:
    """TRANSIENT's modulation (cos parts only) in its run time: one period per unit."""
    mod = _modulated()
    return Modulation(1.3, mod.drift, mod.drift_cos, np.zeros((4, 4)), mod.diffusion, mod.diffusion_cos,
                      np.zeros((4, 4))).scaled(UNIT_PERIOD)


@pytest.mark.parametrize("edit, message", [
    (("save_every = 0.25\n", ""), r"a modulated system's \[simulate\] is a transient"),
    (("dt = 0.0078125\nduration = 12.0\nsave_every = 0.25", "dt = [0.0078125, 0.015625]\nduration = 12.0"),
     r"a modulated system's \[simulate\] is a transient .* with a single dt"),
    (('initial = "zero"', 'initial = "thermal"'), r"does not define a thermal state"),
    (("[simulate]", "outputs = { a = 0.2 }\n[[measure]]\nmode = 'a'\n[simulate]"),
     r"a modulated system runs \[periodic\] .* or a \[simulate\] transient alone"),
    (("trajectories = 64", "trajectories = 64\ntraces = 2"),
     r"traces = 2: a driven or modulated run records no traces"),
])
def test_what_a_modulated_transient_cannot_run_is_refused_in_one_line(tmp_path, capsys, edit, message):
    from conftest import assert_refused

    assert_refused(tmp_path, capsys, TRANSIENT.replace(*edit), message)


def test_a_periodic_drive_gives_the_state_a_long_transient_settles_on():
    """The single cavity at Δ = ω_m under a drive 1 + 0.2 sin(ω_m t): its mean field's limit cycle found by
    shooting, the fluctuations linearized along it. Against the mean field and the moment equation dV/dt = A(z)V +
    VA(z)ᵀ + D integrated together (DOP853, relative 1e-12) for 30 periods from the unmodulated steady state and
    its Lyapunov V (every transient, the slowest at e^{−0.44 t}, is gone to 1e-36), sampled over the 31st at 32
    phases: the same covariance to 1e-10 relative (measured 1.6e-12)."""
    from sde_com.simulation.drive import Drive

    system = sde_com.get_system("single_cavity")
    params = system.resolve({"detuning": 1.0, "detuning_kind": "effective", "power": 0.05})
    drive = Drive(kind="sine", depth=0.2, frequency=1.0)
    ds = sde_com.periodic_sweep(32, drive=drive, system=system, **params)
    assert bool(ds.stable_periodic) and float(ds.growth_rate) < 0
    dynamics, first = system.mean_field_dynamics(params), system.branches(params)[0]
    w = system.reference_rate(params)
    D, z0 = first.diffusion / w, dynamics.steady_state(first)
    nz, d = z0.size, D.shape[0]

    def rate(t, y):
        z, V = y[:nz], y[nz:].reshape(d, d)
        A = dynamics.drift(z)
        return np.concatenate([dynamics.rhs(t, z, float(drive.envelope(t))), (A @ V + V @ A.T + D).ravel()])

    times = 2 * math.pi * (30 + np.arange(32) / 32)
    V0 = sde_com.lyapunov_covariance_reference(first.drift / w, D)
    sol = scipy.integrate.solve_ivp(rate, (0.0, times[-1]), np.concatenate([z0, V0.ravel()]), method="DOP853",
                                    t_eval=times, rtol=1e-12, atol=1e-14)
    V = sol.y[nz:].T.reshape(32, d, d)
    np.testing.assert_allclose(ds.cov_periodic.values, V, rtol=0, atol=1e-10 * np.abs(V).max())
    # the limit cycle's mean field over the phase: the same integration's (relative 1e-8: Newton's 1e-10 on z,
    # carried through the photon number's square)
    for name, values in dynamics.observables(sol.y[:nz]).items():
        assert ds[name].dims == ("phase",)
        np.testing.assert_allclose(ds[name].values, values, rtol=1e-8, atol=1e-12 * np.abs(values).max())
    assert "photons_reflected" not in ds  # the single cavity has one optical mode


DRIVEN = ('[system]\nname = "single_cavity"\n[model]\ndetuning = 1.0\ndetuning_kind = "effective"\n'
          '[periodic]\nsamples = 8\n[drive]\n')


@pytest.mark.parametrize("drive, message", [
    ('kind = "ramp"\n', r"drive.kind = 'ramp' is not periodic: \[periodic\] takes a drive of kind 'sine'"),
    ('kind = "sine"\ndepth = 0.1\nmean_field_start = "steady"\n', r"drive.mean_field_start has no meaning"),
    ('kind = "sine"\ndepth = 0.1\nfrequency = 0.0\n', r"drive.frequency must be > 0"),
])
def test_a_drive_periodic_cannot_take_is_refused(tmp_path, capsys, drive, message):
    from conftest import assert_refused

    assert_refused(tmp_path, capsys, DRIVEN + drive, message)


def test_the_magnus_integration_is_fourth_order():
    """The periodic V of the modulated two-mode system from 4, 8 and 16 Magnus steps per sample interval (16
    samples): successive differences shrink by 2⁴ = 16 (within 14–18: the next order's share), the order the
    Gauss-node Magnus integrator has. A wrong commutator's sign or a node misplaced drops it to second order (4)."""
    from sde_com.physics.floquet import _interval_maps, _periodic_from_maps

    V = [_periodic_from_maps(*_interval_maps(_modulated(), 16, s))[1] for s in (4, 8, 16)]
    ratio = np.abs(V[0] - V[1]).max() / np.abs(V[1] - V[2]).max()
    assert 14 < ratio < 18, ratio


def test_a_strongly_damped_mode_under_a_slow_modulation_keeps_its_noise():
    """A mode damped at κ = 20 beside one at 0.2, the modulation slow (Ω = 0.05: each of 64 sample intervals lasts
    2 κ⁻¹ × 20): at zero depth the periodic state is the Lyapunov V to 1e-10 (the maps are composed Magnus step by
    Magnus step; chained over a whole interval, Φ^−ᵀ grows as e^{κτ} and rounding swamps Q)."""
    A = np.diag([-20.0, -20.0, -0.2, -0.2]) + np.array([[0, 1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1.0],
                                                          [0, 0, -1.0, 0]])
    D = np.diag([40.0, 40.0, 0.4, 0.4])
    Z4 = np.zeros((4, 4))
    state = periodic_state(Modulation(0.05, A, Z4, Z4, D, Z4, Z4), samples=64)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    np.testing.assert_allclose(state.cov, np.broadcast_to(V, state.cov.shape), rtol=0, atol=1e-10 * np.abs(V).max())


def test_a_conservative_mode_is_not_called_stable():
    """An undamped oscillator (|μ| = 1 exactly) under a modulation outside every tongue, with and without noise:
    rounding would put max|μ| a hair either side of 1; within 1e-9 of it the state is reported not stable, never
    a covariance of 1e14 or a solver's traceback."""
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    Ac = np.array([[0.0, 0.0], [-0.05, 0.0]])
    for frequency in (0.7, 1.3, 3.1):
        for D in (Z2, np.eye(2) * 0.1):
            state = periodic_state(Modulation(frequency, A, Ac, Z2, D, Z2, Z2), samples=16)
            assert not state.stable and state.cov is None, (frequency, state.growth_rate)


def test_the_python_entry_points_refuse_a_modulated_system_and_an_unstable_start():
    """A modulated system has no constant steady state: ``sweep`` (and every path through its branches) refuses it
    naming [periodic]; a transient of a parametrically unstable one from initial = 'steady' says why instead of
    failing on the missing periodic state."""
    unstable = sde_com.MatrixSystem(["m"], [[0.0, 1.0], [-1.0, -0.001]], [[0.0, 0.0], [0.0, 0.002]],
                                    time_scale=1.0, modulation={"frequency": 2.0,
                                                                "drift_cos": [[0.0, 0.0], [-0.1, 0.0]]})
    with pytest.raises(sde_com.errors.UserError, match="a modulated system's steady state is periodic"):
        sde_com.sweep(system=unstable)
    settings = sde_com.SimulationSettings(dt=0.1, duration=1.0, save_every=0.5, trajectories=4, initial="steady")
    with pytest.raises(sde_com.errors.UserError, match="unstable .* no periodic state to start from"):
        sde_com.simulate(settings, system=unstable)


# Mathieu's oscillator written as physicists do: H = ω₀ a†a + (εω₀/4) cos(Ωt) (a + a†)² = ω₀(x² + p²)/2 +
# (εω₀/2) cos(Ωt) x², damped by a zero-temperature bath of energy rate g (amplitude g/2)
MATHIEU_H = ("w*dag(m)*m + e*w/4*cos(W*t)*(m + dag(m))**2", [{"kind": "thermal", "mode": "m", "rate": "g"}],
             {"w": 1.0, "e": 0.1, "W": 2.3, "g": 2e-3})


def test_a_hamiltonian_periodic_in_time_is_the_modulated_matrices_it_stands_for():
    """The Hamiltonian's A(t) is the matrix system's A + A_c cos Ωt with A_c = [[0, 0], [−εω₀, 0]] (its x² term's
    drift) and the bath's −g/2 on both quadratures; its period found from cos(W*t) (Ω = W) or stated: the same
    periodic state as the matrices', to 1e-12 (the same equation; the Fourier samples' rounding)."""
    h, baths, params = MATHIEU_H
    found = sde_com.HamiltonianSystem(["m"], h, baths, params, time_scale=1.0)
    stated = sde_com.HamiltonianSystem(["m"], h, baths, params, time_scale=1.0, period="2*pi/W")
    A = np.array([[-1e-3, 1.0], [-1.0, -1e-3]])
    matrices = Modulation(2.3, A, np.array([[0.0, 0.0], [-0.1, 0.0]]), Z2, np.diag([1e-3, 1e-3]), Z2, Z2)
    expected = periodic_state(matrices, 16)
    for system in (found, stated):
        mod = system.periodic_modulation({})
        assert mod.frequency == pytest.approx(2.3, rel=1e-14)
        state = periodic_state(mod, 16)
        np.testing.assert_allclose(state.cov, expected.cov, rtol=0, atol=1e-12 * np.abs(expected.cov).max())
    assert "periodic" in found.capabilities and found.definition()["hamiltonian"] == h
    # the same Hamiltonian built in Python (sde_com.hamiltonian's ``time``): the same modulation
    from sde_com.hamiltonian import cos, dag, ladder, symbols, time

    (m,), (w, e, W) = ladder("m"), symbols("w", "e", "W")
    built = sde_com.HamiltonianSystem(["m"], w * dag(m) * m + e * w / 4 * cos(W * time) * (m + dag(m)) ** 2, baths,
                                      params, time_scale=1.0)
    # the same expression, parenthesised as built: the same products in another order (rounding of A_c ~ 0.1)
    np.testing.assert_allclose(built.periodic_modulation({}).drift_cos, found.periodic_modulation({}).drift_cos,
                               rtol=0, atol=1e-15)


def test_harmonics_and_a_found_period_of_several_frequencies():
    """cos(W t)² holds the second harmonic of W and sin(1.5 W t) the third of W/2: the period found is 4π/W (the
    largest common one) and the series, sampled 2K + 1 times, is the Hamiltonian at any time (checked off the
    samples inside to 1e-10; here at t = 0.3 s against a direct evaluation)."""
    from sde_com.physics.hamiltonian import TIME

    system = sde_com.HamiltonianSystem(["m"], "w*dag(m)*m + e*cos(W*t)**2*(m + dag(m))**2 + "
                                             "0.01*sin(1.5*W*t)*dag(m)*m", [{"kind": "thermal", "mode": "m",
                                                                             "rate": 0.01}],
                                       {"w": 1.0, "e": 0.05, "W": 2.0}, time_scale=1.0)
    mod = system.periodic_modulation({})
    assert mod.frequency == pytest.approx(1.0, rel=1e-12) and mod.drift_cos.shape == (4, 2, 2)
    direct = system._matrices({**system.resolve({}), TIME: 0.3})[0]
    # a DFT of 9 samples of an A of size ~1: its rounding is ~9 × 2.2e-16 a coefficient, summed over 4 harmonics
    np.testing.assert_allclose(mod.at(0.3)[0], direct, rtol=0, atol=1e-13)


HAMILTONIAN_PERIODIC = """[system]
modes = ["m"]
hamiltonian = "w*dag(m)*m + e*w/4*cos(W*t)*(m + dag(m))**2"
parameters = { w = 1.0, e = 0.1, W = 2.3, g = 0.002 }
time_scale = 1.0
[[system.dissipators]]
kind = "thermal"
mode = "m"
rate = "g"
n = 2.0
"""


def test_a_periodic_hamiltonian_runs_its_periodic_state_and_a_thermal_transient(tmp_path):
    """Through the CLI: [periodic] over a swept modulation frequency (inside and outside Mathieu's tongue at
    2ω₀: the stability the matrices give), and a [simulate] transient from the baths' thermal state (n = 2), whose
    moment solution at t = 0 is that state."""
    from conftest import run_cli
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset

    out = tmp_path / "periodic.nc"
    text = HAMILTONIAN_PERIODIC.replace("[[system", "[model]\nW = [2.0, 2.3]\n[periodic]\nsamples = 8\n[[system")
    assert run_cli(tmp_path, text, out) == 0
    ds = read_dataset(out)
    assert ds.stable_periodic.values.tolist() == [False, True]
    assert_cf_clean(out)
    out = tmp_path / "transient.nc"
    text = HAMILTONIAN_PERIODIC + ("[simulate]\ndt = 0.05\nduration = 2.0\nsave_every = 1.0\ntrajectories = 16\n"
                                   "initial = 'thermal'\n")
    assert run_cli(tmp_path, text, out) == 0
    np.testing.assert_allclose(read_dataset(out).cov_ref.values[0], np.eye(2) * 2.5, rtol=1e-12)


@pytest.mark.parametrize("edit, message", [
    (("cos(W*t)", "t"), r"the time t appears outside cos, sin or exp"),
    (("cos(W*t)", "cos(W*t*t)"), r"its argument is not linear in t"),
    (("cos(W*t)", "cos(1j*W*t)"), r"grows or decays in t"),
    (("cos(W*t)", "exp(W*t)"), r"grows or decays in t"),
    (("cos(W*t)", "1/cos(W*t)"), r"divides by a periodic coefficient"),
    (("cos(W*t)", "sqrt(cos(W*t))"), r"a function of a periodic coefficient"),
    (("cos(W*t)", "cos(W*t)*cos(sqrt(2)*W*t)"), r"are not commensurate"),
    (('rate = "g"', 'rate = "g*cos(W*t)"'), r"the time t may appear only in system.hamiltonian"),
    (("time_scale = 1.0", "time_scale = 1.0\nperiod = 1.0"), r"not a whole multiple of 2π/period"),
    (('modes = ["m"]', 'modes = ["t"]'), r"names of the grammar"),
    (("cos(W*t)", "cos(W)"), r"system.period: the Hamiltonian does not depend on the time t"),
    (("cos(W*t)", "cos(1e-320*t)"), r"gives no finite period"),
    (("cos(W*t)", "(cos(1e200*t) + cos(1e-200*t))"), r"their ratio is beyond floats"),
    (("cos(W*t)", "cos(W*t + 1e20)"), r"its phase 1e\+20 is too large for its frequency"),
])
def test_what_a_periodic_hamiltonian_cannot_be_is_refused_in_one_line(tmp_path, capsys, edit, message):
    from conftest import assert_refused

    text = HAMILTONIAN_PERIODIC + "[periodic]\n"
    if "period = 1.0" not in edit[1] and "cos(W)" in edit[1]:
        text = text.replace("time_scale = 1.0", "time_scale = 1.0\nperiod = 1.0")
    assert_refused(tmp_path, capsys, text.replace(*edit), message)


def test_a_large_diffusion_scales_the_state_and_nothing_else():
    """V is linear in D (Eq. (P3)): D × 1e10 (a hot mode in units of a slow modulation) gives V × 1e10 to 1e-12
    relative, and the monodromy is unchanged (the exponential's squarings follow A alone: a large D used to force
    dozens of them, each rounding Φ)."""
    mod = _modulated()
    base = periodic_state(mod, 16)
    hot = periodic_state(Modulation(mod.frequency, mod.drift, mod.drift_cos, mod.drift_sin, 1e10 * mod.diffusion,
                                    1e10 * mod.diffusion_cos, 1e10 * mod.diffusion_sin), 16)
    # the same operations on D scaled by a number not a power of two: rounding (~1e-16), carried through the
    # discrete Lyapunov solve (its condition ~10 here) and the 1024 steps' composition: 1e-12 leaves room
    np.testing.assert_allclose(hot.cov / 1e10, base.cov, rtol=0, atol=1e-12 * np.abs(base.cov).max())
    np.testing.assert_allclose(hot.multipliers, base.multipliers, rtol=1e-13)  # Φ never sees D: identical maps


def test_a_hamiltonian_point_where_the_modulation_stops_is_its_steady_state():
    """W = 0 at a grid point with the period stated: nothing changes in time (no harmonics), and the periodic
    state is the Lyapunov state of the constant A at every phase; without a stated period there is none to find."""
    h, baths, params = MATHIEU_H
    system = sde_com.HamiltonianSystem(["m"], h, baths, {**params, "W": 0.0}, time_scale=1.0, period=2.0)
    mod = system.periodic_modulation({})
    assert mod.drift_cos.shape == (0, 2, 2)
    state = periodic_state(mod, 8)
    A = np.array([[-1e-3, 1.0], [-1.0 - 0.1, -1e-3]])  # cos(0) = 1: the spring stiffened by e
    V = scipy.linalg.solve_continuous_lyapunov(A, -np.diag([1e-3, 1e-3]))
    # the periodic V is converged to 1e-11 (its own Richardson estimate); the Lyapunov solve to rounding
    np.testing.assert_allclose(state.cov, np.broadcast_to(V, state.cov.shape), rtol=0, atol=1e-10 * np.abs(V).max())
    with pytest.raises(sde_com.errors.UserError, match="every frequency is 0.* state system.period"):
        sde_com.HamiltonianSystem(["m"], h, baths, {**params, "W": 0.0}, time_scale=1.0)


def test_a_modulated_transient_runs_one_point():
    """A [model] sweep under a modulated system's [simulate] is refused before any work, naming the swept keys."""
    from sde_com.errors import ScenarioError
    from sde_com.runs.scenario import parse_scenario

    text = HAMILTONIAN_PERIODIC + "[model]\nW = [2.0, 2.3]\n[simulate]\ndt = 0.05\nduration = 1.0\nsave_every = 0.5\n"
    with pytest.raises(ScenarioError, match=r"runs one operating point: \[model\] sweeps \['W'\]"):
        parse_scenario(text)


def test_a_state_stable_only_at_the_finer_level_is_checked_before_it_is_kept(monkeypatch):
    """Near the boundary the coarser maps may call the state unstable and the finer stable: V has then no
    Richardson estimate yet, and the doubling goes on until it has one within rtol (here the 8-substep level is
    made unstable: the result keeps doubling past 16 and reports a finite error)."""
    from sde_com.physics import floquet

    real_maps, real_solve, level = floquet._interval_maps, floquet._periodic_from_maps, {}

    def maps(mod, samples, substeps):
        out = real_maps(mod, samples, substeps)
        level[id(out[0])] = substeps
        return out

    def solve(Phi_k, Q_k):
        Phi, V = real_solve(Phi_k, Q_k)
        return (Phi, None) if level.get(id(Phi_k)) == 8 else (Phi, V)

    monkeypatch.setattr(floquet, "_interval_maps", maps)
    monkeypatch.setattr(floquet, "_periodic_from_maps", solve)
    state = floquet.periodic_state(_modulated(), 64)
    assert state.stable and math.isfinite(state.error) and state.error <= floquet.PERIODIC_RTOL
    assert state.substeps == 32


def test_a_phase_on_a_stopped_modulation_is_not_a_frequency():
    """W = 0 with a phase (cos(W*t + 0.3)) and a stated period: a constant coefficient, not a refusal."""
    system = sde_com.HamiltonianSystem(["m"], "w*dag(m)*m + e*cos(W*t + 0.3)*(m + dag(m))**2",
                                       [{"kind": "thermal", "mode": "m", "rate": 0.01}],
                                       {"w": 1.0, "e": 0.05, "W": 0.0}, time_scale=1.0, period=3.0)
    mod = system.periodic_modulation({})
    assert mod.drift_cos.shape == (0, 2, 2) and mod.frequency == pytest.approx(2 * math.pi / 3.0)
