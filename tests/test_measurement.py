"""Continuous measurement (``physics.measurement``, ``[[measure]]``): the conditional steady state against closed
forms and against integrating the Riccati equation, the Gaussian measures, and the refusals.

The closed forms are of one mode damped at the amplitude rate κ into its port and at rest otherwise
(A = −κ I, D = κ(2n + 1) I with n the thermal occupation of its input). A homodyne of x at efficiency η adds to
dV_xx/dt = −2κ V + κ(2n + 1) the term −(2√(ηκ) V − √(ηκ))² (Eq. (M4): V Cᵀ + Γ with C = 2√(ηκ), Γ = −√(ηκ)).
With w = 2V − 1 the steady state solves η w² + w − 2n = 0, so

    V_xx = (1 + w)/2,  w = (√(1 + 8ηn) − 1)/(2η),

and p, unmeasured, stays at n + ½. A factor of 2 in the measurement strength (C) moves V_xx; the wrong sign of Γ
(the detector's noise correlated the other way with the port's input) leaves a vacuum-damped mode mixed.
"""

import math

import numpy as np
import pytest
import xarray as xr
from conftest import assert_refused

import sde_com
from sde_com.errors import NumericalError
from sde_com.physics.gaussian import occupations, purity, squeezing_db
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.physics.measurement import (
    Channel,
    channels,
    conditional_covariance,
    measurement_matrices,
    riccati_rate,
)

KAPPA = 1.3  # the mode's amplitude decay rate into its port (any rate: the closed forms scale with it)
RTOL = 1e-10  # Schur solutions of 2 × 2 and 4 × 4 well-conditioned Riccati equations: rounding, ~1e-14


def damped_mode(n=0.0):
    return -KAPPA * np.eye(2), KAPPA * (2 * n + 1) * np.eye(2)


def conditional(A, D, chans, kappa=KAPPA):
    C, G = measurement_matrices(chans, [kappa] * len(chans), A.shape[0] // 2)
    return conditional_covariance(A, D, C, G)


def test_perfect_homodyne_keeps_a_vacuum_damped_mode_pure():
    for theta in (0.0, 0.7, math.pi / 2):
        V = conditional(*damped_mode(), [Channel(0, theta, 1.0)])
        np.testing.assert_allclose(V, 0.5 * np.eye(2), rtol=RTOL, atol=RTOL)
        assert purity(V) == pytest.approx(1.0, rel=RTOL)


def test_a_detector_noise_correlated_the_wrong_way_would_not_keep_it_pure():
    """The premise of the test above: with Γ of the other sign the same mode's conditional state is not the
    vacuum (V_xx = 0 here: below the uncertainty bound), so that test fails for that mistake."""
    A, D = damped_mode()
    C, G = measurement_matrices([Channel(0, 0.0, 1.0)], [KAPPA], 1)
    V = conditional_covariance(A, D, C, -G)
    assert abs(V[0, 0] - 0.5) > 0.1


@pytest.mark.parametrize("eta", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [0.0, 2.0, 270.0])
def test_homodyne_of_a_thermal_mode_gives_the_scalar_riccati_closed_form(eta, n):
    V = conditional(*damped_mode(n), [Channel(0, 0.0, eta)])
    w = (math.sqrt(1 + 8 * eta * n) - 1) / (2 * eta)
    np.testing.assert_allclose(np.diag(V), [(1 + w) / 2, n + 0.5], rtol=RTOL)
    assert V[0, 1] == pytest.approx(0.0, abs=RTOL * (n + 1))
    # a factor of 2 in the measurement strength would give the form at 4η: far from it wherever n > 0
    if n > 0:
        w4 = (math.sqrt(1 + 32 * eta * n) - 1) / (8 * eta)
        assert abs((1 + w4) / 2 - V[0, 0]) > 0.05 * V[0, 0]


@pytest.mark.parametrize("n", [0.0, 5.0])
def test_heterodyne_measures_both_quadratures_at_half_the_efficiency(n):
    """Heterodyne at η: each quadrature as a homodyne at η/2 (w = (√(1 + 4ηn) − 1)/η); at η = 1 of a
    vacuum-damped (coherent) mode, the vacuum."""
    eta = 1.0
    chans = channels([{"mode": "a", "scheme": "heterodyne", "theta": 0.3, "efficiency": eta}], ["a"])
    assert [c.efficiency for c in chans] == [0.5, 0.5]
    V = conditional(*damped_mode(n), chans)
    w = (math.sqrt(1 + 4 * eta * n) - 1) / eta if n else 0.0
    np.testing.assert_allclose(V, (1 + w) / 2 * np.eye(2), rtol=RTOL, atol=RTOL)


def test_no_efficiency_gives_back_the_unconditional_state():
    """η → 0: V_c → the Lyapunov V, to first order in η (η = 1e-10: a difference of order 1e-10 × V²κ/κ)."""
    A, D = _optomechanics()
    C, G = measurement_matrices([Channel(0, 0.0, 1e-10)], [0.5], 2)
    V = lyapunov_covariance_reference(A, D)
    np.testing.assert_allclose(conditional_covariance(A, D, C, G), V, rtol=1e-6, atol=1e-9 * np.abs(V).max())


def _optomechanics():
    """A red-detuned optomechanical pair (ω_m = 1): cavity at amplitude rate 0.5, G = 0.2, a Brownian bath."""
    A = np.array([[-0.5, 1.0, 0.0, 0.0], [-1.0, -0.5, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0], [0.4, 0.0, -1.0, -0.01]])
    D = np.diag([0.5, 0.5, 0.0, 0.01 * 21])
    return A, D


def test_the_steady_riccati_solution_is_where_its_equation_settles():
    """Integrating Eq. (M4) from the unconditional V (the filter starts knowing nothing) until it stops moving
    reaches the Schur solution; the integration's own tolerance (rtol 1e-10) bounds the difference."""
    from scipy.integrate import solve_ivp

    A, D = _optomechanics()
    C, G = measurement_matrices([Channel(0, 0.4, 0.8)], [0.5], 2)
    V0 = lyapunov_covariance_reference(A, D)
    sol = solve_ivp(lambda t, v: riccati_rate(v.reshape(4, 4), A, D, C, G).ravel(), (0.0, 400.0), V0.ravel(),
                    method="LSODA", rtol=1e-10, atol=1e-12)
    settled = sol.y[:, -1].reshape(4, 4)
    assert np.abs(riccati_rate(settled, A, D, C, G)).max() < 1e-8
    np.testing.assert_allclose(settled, conditional_covariance(A, D, C, G), rtol=1e-7, atol=1e-9)


def test_an_unstable_mode_the_detectors_do_not_see_has_no_conditional_state():
    A = np.diag([0.1, 0.1, -1.0, -1.0])  # mode a grows; mode b is measured
    C, G = measurement_matrices([Channel(1, 0.0, 1.0)], [1.0], 2)
    with pytest.raises(NumericalError, match="stabilis"):
        conditional_covariance(A, np.eye(4), C, G)


def test_gaussian_measures_of_thermal_and_squeezed_states():
    n, r = 3.0, 0.4
    thermal = (n + 0.5) * np.eye(2)
    squeezed = 0.5 * np.diag([math.exp(-2 * r), math.exp(2 * r)])
    assert occupations(thermal)[0] == pytest.approx(n)
    assert purity(thermal) == pytest.approx(1 / (2 * n + 1))
    assert purity(squeezed) == pytest.approx(1.0) and occupations(squeezed)[0] == pytest.approx(math.sinh(r) ** 2)
    assert squeezing_db(squeezed)[0] == pytest.approx(-20 * r / math.log(10))  # 10 log10(e^{-2r})
    assert squeezing_db(thermal)[0] == pytest.approx(10 * math.log10(2 * n + 1))


WATCHED = """
[system]
name = "single_cavity"
[model]
detuning = [0.8, 1.0]
detuning_kind = "effective"
"""


def test_a_scenario_with_measure_adds_the_conditional_state():
    """[[measure]] on the single cavity's port: the conditional state of every point is the Riccati solution of
    its own A, D, C, Γ; it is purer and more entangled than the unconditional one; η of two detectors add."""
    from conftest import run_text

    text = WATCHED + ('[[measure]]\nmode = "a"\nefficiency = 0.6\n'
                      '[[measure]]\nmode = "a"\nscheme = "heterodyne"\ntheta = 0.5\nefficiency = 0.3\n')
    ds = run_text(text).isel(branch=0)
    system = sde_com.get_system("single_cavity")
    assert list(ds.channel_efficiency.values) == [0.6, 0.15, 0.15]
    for detuning in (0.8, 1.0):
        params = dict(detuning=detuning, detuning_kind="effective")
        op = sde_com.physics.model.points(system, params)[0]
        kappa = system.output_ports(params)["a"]
        C, G = measurement_matrices([Channel(0, 0.0, 0.6), Channel(0, 0.5, 0.15), Channel(0, 0.5 + math.pi / 2, 0.15)],
                                    [kappa] * 3, 2)
        expected = conditional_covariance(op.drift, op.diffusion, C, G, scale=system.reference_rate(params))
        point = ds.sel(detuning=detuning)
        np.testing.assert_allclose(point.cov_conditional.values, expected, rtol=1e-9, atol=1e-12)
        assert float(point.purity_conditional) > float(point.purity)
        assert float(point.logneg_conditional.sel(pair="a-m")) > float(point.logneg.sel(pair="a-m"))
        assert float(point.occupation_conditional.sel(mode="m")) < float(point.occupation.sel(mode="m"))


@pytest.mark.parametrize("measure, message", [
    ('mode = "m"', r"measure\[0\]\.mode = 'm' has no output port; the ports are \['a'\]"),
    ('mode = "a"\nefficiency = 0.0', r"measure\[0\]\.efficiency must be > 0 and <= 1"),
    ('mode = "a"\nefficiency = 1.5', r"measure\[0\]\.efficiency must be > 0 and <= 1"),
    ('mode = "a"\ntheta = nan', r"measure\[0\]\.theta must be"),
    ('mode = "a"\nefficiency = 0.7\n[[measure]]\nmode = "a"\nscheme = "heterodyne"\nefficiency = 0.5',
     r"detectors on port 'a' take efficiencies adding up to 1\.2"),
    ('mode = "a"\nscheme = "photon counting"', r"measure\[0\]\.scheme must be one of 'homodyne', 'heterodyne'"),
])
def test_bad_detectors_are_refused_before_any_work(tmp_path, capsys, measure, message):
    assert_refused(tmp_path, capsys, WATCHED + "[[measure]]\n" + measure + "\n", message)


def test_measure_needs_output_ports(tmp_path, capsys):
    matrices = ('[system]\nmodes = ["a"]\ndrift = [[-1.0, 0.0], [0.0, -1.0]]\ndiffusion = [[1.0, 0.0], [0.0, 1.0]]\n'
                '[[measure]]\nmode = "a"\n')
    assert_refused(tmp_path, capsys, matrices, r"needs the capability 'output_ports': give \[system\] outputs")


def test_the_python_function_writes_what_the_scenario_writes():
    from conftest import run_text

    ds = sde_com.conditional_sweep([{"mode": "a", "efficiency": 0.6}], system="single_cavity", detuning=[0.8, 1.0],
                                   detuning_kind="effective")
    scenario = run_text(WATCHED + '[[measure]]\nmode = "a"\nefficiency = 0.6\n')
    np.testing.assert_array_equal(ds.cov_conditional.values, scenario.cov_conditional.values)
    with pytest.raises(sde_com.errors.UserError, match=r"measure\[0\]\.efficiency must be > 0 and <= 1"):
        sde_com.conditional_sweep([{"mode": "a", "efficiency": 2.0}], system="single_cavity")


# Conditional trajectories and the filter of records ---------------------------------------------------------

TRAJ = dict(system="single_cavity", detuning=1.0, detuning_kind="effective")
ALPHA = 1e-3  # the chance that a correct code fails a Bonferroni-bounded comparison had the seed been random


def _bonferroni(m: int) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - ALPHA / (2 * m)))


def test_the_estimation_error_has_the_filters_covariance_and_the_innovations_are_white():
    """4000 trajectories from a thermal start, watched at η = 0.8: ⟨(u − x̂)(u − x̂)ᵀ⟩ against the filter's P at
    21 saved times (10 independent entries each; errors from the spread over trajectories: 4000 is enough for
    the normal quantile, the products' kurtosis notwithstanding), and the whitened innovations of 8e6 steps:
    unit variance, no lag-1 correlation (their errors √(2/n), 1/√n)."""
    from sde_com.simulation.conditional import conditional_simulate

    ds = conditional_simulate([{"mode": "a", "efficiency": 0.8}], dt=0.01, duration=20.0, trajectories=4000, seed=3,
                              save_every=1.0, initial="thermal", **TRAJ)
    rows, cols = np.triu_indices(4)
    for name in ("zscore_filter", "zscore_filter_continuous"):  # the continuous one: P differs at O(dt²), unseen
        z = np.abs(ds[name].values[:, rows, cols])
        assert z.max() < _bonferroni(z.size), (name, z.max())
    for name in ("innovation_variance", "innovation_lag1"):
        target = 1.0 if name == "innovation_variance" else 0.0
        zi = np.abs(ds[name].values - target) / ds[f"{name}_err"].values
        assert zi.max() < _bonferroni(2), (name, zi)


def test_the_discrete_filter_follows_the_continuous_riccati_path_within_a_step():
    """From a thermal start (far from the steady state: P falls from 833 by orders of magnitude), the exact
    discrete filter's P_n against the integrated Riccati equation V_c(n dt): within what V_c moves in one step at
    its fastest (dt · max|dV_c/dt|, at the start; a loose sanity bound, 45–90× the gaps measured), and converging
    (the sharp check) at second order in dt (measured: 0.509, 0.127,
    0.0318 at dt = 0.02, 0.01, 0.005; the band 1.8–2.2 on the slope excludes first order, as a record sampled
    or a filter updated at the wrong end of the step would give)."""
    from sde_com.physics.measurement import riccati_rate
    from sde_com.simulation.conditional import _model, conditional_simulate

    params = {k: v for k, v in TRAJ.items() if k != "system"}
    gaps = []
    for dt in (0.02, 0.01):
        ds = conditional_simulate([{"mode": "a", "efficiency": 0.8}], dt=dt, duration=4.0, trajectories=2,
                                  save_every=0.2, initial="thermal", **TRAJ)
        P, V = ds.cov_filter.values, ds.cov_filter_continuous.values
        A, D, C, G = _model([{"mode": "a", "efficiency": 0.8}], sde_com.get_system("single_cavity"), params, dt,
                            "thermal", 0)["continuous"]
        bound = dt * np.abs(riccati_rate(V[0], A, D, C, G)).max()
        gaps.append(np.abs(P - V).max())
        assert gaps[-1] < bound, (dt, gaps[-1], bound)
    assert 1.8 < np.log2(gaps[0] / gaps[1]) < 2.2, gaps


def test_the_filters_covariance_settles_on_the_riccati_steady_state_at_second_order_in_dt():
    """The discrete filter of the exactly discretized record tends to the continuous Riccati solution as dt → 0,
    at second order (measured 2.4e-5, 5.9e-6, 1.5e-6 at dt = 0.02, 0.01, 0.005): slopes in [1.8, 2.2]."""
    from sde_com.simulation.conditional import conditional_simulate

    measures = [{"mode": "a", "efficiency": 0.8}]
    steady = sde_com.conditional_sweep(measures, **TRAJ).cov_conditional.isel(branch=0).values
    errors = [np.abs(conditional_simulate(measures, dt=dt, duration=30.0, trajectories=2, save_every=30.0, **TRAJ)
                     .cov_filter.isel(time=-1).values - steady).max() for dt in (0.02, 0.01, 0.005)]
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((slopes > 1.8) & (slopes < 2.2)), (errors, slopes)


def test_the_filter_of_a_runs_own_record_reproduces_its_estimate():
    """kalman_filter over the record of a run saved at every step gives that run's estimate to rounding (the same
    gains, the same arithmetic: measured bitwise equal)."""
    from sde_com.simulation.conditional import conditional_simulate, kalman_filter

    measures = [{"mode": "a", "efficiency": 0.5}, {"mode": "a", "scheme": "heterodyne", "efficiency": 0.4}]
    ds = conditional_simulate(measures, dt=0.01, duration=3.0, trajectories=3, traces=3, seed=7, **TRAJ)
    out = kalman_filter(ds.record.values, 0.01, measures, **TRAJ)
    np.testing.assert_allclose(out["estimate"], ds.estimate.values, rtol=0, atol=1e-12 * np.abs(ds.estimate).max())
    np.testing.assert_allclose(out["cov_filter"][-1], ds.cov_filter.isel(time=-1).values, rtol=1e-12)
    assert out["innovation"].shape == (3, 300, 3)


@pytest.mark.parametrize("record, message", [(np.zeros((10, 2)), r"with 1 channel\(s\)"),
                                             (np.full((10, 1), np.nan), "NaN or infinite")])
def test_a_bad_record_is_refused(record, message):
    from sde_com.simulation.conditional import kalman_filter

    with pytest.raises(sde_com.errors.UserError, match=message):
        kalman_filter(record, 0.01, [{"mode": "a"}], **TRAJ)


WATCH = WATCHED.replace("detuning = [0.8, 1.0]", "detuning = 1.0") + """
[simulate]
method = "exact"
dt = 0.01
duration = 3.0
trajectories = 4
seed = 2
initial = "thermal"
save_every = 0.01
traces = 3
[[measure]]
mode = "a"
efficiency = 0.8
"""


def test_sde_com_filter_reproduces_the_runs_estimate_from_its_record_file(tmp_path):
    """A [simulate] run with [[measure]] writes the record; ``sde-com filter`` over that file gives the run's
    estimate back to rounding (measured bitwise), CF-clean, and refuses what it cannot filter (exit 2)."""
    from conftest import run_cli, write_scenario
    from test_cf import assert_cf_clean

    from sde_com.cli import main
    from sde_com.results.io import read_dataset

    run = tmp_path / "watch.nc"
    assert run_cli(tmp_path, WATCH, run) == 0
    scenario = write_scenario(tmp_path, WATCH, "watch.toml")
    out = tmp_path / "filtered.nc"
    assert main(["filter", str(scenario), str(run), "-o", str(out), "--quiet"]) == 0
    a, b = read_dataset(run), read_dataset(out)
    np.testing.assert_allclose(b.estimate.values, a.estimate.values, rtol=0, atol=1e-12 * np.abs(a.estimate).max())
    assert_cf_clean(out)
    assert main(["filter", str(scenario), str(run), "-o", str(out)]) == 2  # exists, no --force
    bad = tmp_path / "bad.nc"
    a.drop_vars("record").to_netcdf(bad)
    assert main(["filter", str(scenario), str(bad), "-o", str(tmp_path / "x.nc")]) == 2
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("change, message", [
    (("save_every = 0.01", "save_times = [1.0]\nburn_in = 1.0"), r"use save_every, not save_times"),
    (("traces = 3", "traces = 3\nburn_in = 1.0"), r"needs burn_in = 0"),
])
def test_conditional_trajectories_refuse_what_they_do_not_do(tmp_path, capsys, change, message):
    assert_refused(tmp_path, capsys, WATCH.replace(*change), message)


def test_qutips_stochastic_master_equation_gives_the_riccati_conditional_variance():
    """The peer: QuTiP's ``smesolve`` of a degenerate parametric amplifier (H = iχ(a†² − a²)/2, κ D[a]) watched by
    homodyne of x at η = 0.6 (QuTiP has no efficiency: √(ηκ) a as the monitored operator, √((1 − η)κ) a as
    unmonitored loss), in a Fock space of 12 levels (⟨a†a⟩ ≈ 0.1: converged, 16 levels move it by < 2e-6).
    For a Gaussian state the conditional variance is the same on every trajectory once the start is forgotten
    (t > 6/κ); QuTiP's scatters about it by its integrator's noise (std ≈ 7e-5, measured), and its mean must lie
    within 3 of those of the Riccati solution. A wrong efficiency or sign moves V_c by far more (η = 0.3: 0.04)."""
    qutip = pytest.importorskip("qutip")

    kappa, chi, eta, levels = 1.0, 0.2, 0.6, 12
    a = qutip.destroy(levels)
    x = (a + a.dag()) / math.sqrt(2)
    times = np.linspace(0.0, 12.0, 121)
    result = qutip.smesolve(1j * chi * (a.dag() ** 2 - a ** 2) / 2, qutip.basis(levels, 0), times,
                            c_ops=[math.sqrt((1 - eta) * kappa) * a], sc_ops=[math.sqrt(eta * kappa) * a],
                            e_ops=[x, x * x], ntraj=2, seeds=1,
                            options={"dt": 0.004, "method": "platen", "keep_runs_results": True,
                                     "progress_bar": False})
    variance = (np.array(result.runs_expect[1]) - np.array(result.runs_expect[0]) ** 2)[:, times > 6.0]
    system = sde_com.HamiltonianSystem(["a"], "1j*chi*(dag(a)**2 - a**2)/2",
                                       [dict(kind="thermal", mode="a", rate=kappa, port=True)], dict(chi=chi))
    V = sde_com.conditional_sweep([{"mode": "a", "efficiency": eta}], system=system).cov_conditional
    assert abs(variance.mean() - float(V.isel(branch=0)[0, 0])) < 3 * variance.std()
    wrong = sde_com.conditional_sweep([{"mode": "a", "efficiency": eta / 2}], system=system).cov_conditional
    assert abs(variance.mean() - float(wrong.isel(branch=0)[0, 0])) > 100 * variance.std()


def test_the_conditional_stepper_draws_the_streams_normals_block_by_block():
    """Drawn in blocks that continue the stream, the normals are those of the stream drawn whole (bitwise): a
    run's trajectories do not depend on the block size."""
    from sde_com.kernels.filtering import _stream
    from sde_com.random.normals import STEP_STREAM_ID, continue_normals, standard_normals

    whole = standard_normals(np.int64(9), np.int64(5), 3000)
    state, parts = _stream(np.int64(9), np.int64(5)), []
    for start in range(0, 3000, 700):
        out = np.empty(min(700, 3000 - start))
        continue_normals(state, np.int64(9), np.int64(5), STEP_STREAM_ID, start, out)
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


LONG_WATCH = (WATCH.replace("duration = 3.0", "duration = 200.0").replace("trajectories = 4", "trajectories = 4096")
              .replace("save_every = 0.01", "save_every = 10.0").replace("traces = 3", "traces = 300")
              .replace("seed = 2", "seed = 6"))


def test_conditional_runs_in_units_resume_to_the_same_bits(tmp_path):
    """16 units of 256 trajectories: killed after three, resumed, the file is the uninterrupted run's (the units'
    sums are added in unit order; the traces of 300 trajectories span two units)."""
    from conftest import assert_identical_output, killed_then_resumed

    from sde_com.results.io import read_dataset

    ref, out, _ = killed_then_resumed(tmp_path, LONG_WATCH)
    assert_identical_output(read_dataset(ref), read_dataset(out))
    assert read_dataset(out).trace.sizes["trajectory"] == 300


def _record_file(n=2000, spacing=1.0e-10, jitter=0.0, units="s", values=None, time=None, channel_theta=None):
    rng = np.random.default_rng(0)
    t = np.arange(n + 1) * spacing
    t = t + jitter * np.abs(t).max() * rng.uniform(-1, 1, t.size) if jitter else t
    rec = rng.standard_normal((n, 1)) * 0.01 if values is None else values
    theta = {} if channel_theta is None else {"channel_theta": ("channel", [channel_theta])}
    return xr.Dataset({"record": (("interval", "channel"), rec)},
                      coords={"time": ("time", t if time is None else time, {"units": units}), **theta})


@pytest.mark.parametrize("records, message", [
    (dict(jitter=1e-7), "not uniform"),
    (dict(units="us"), r"time must be in seconds \(units = 's'\), got units 'us'"),
    (dict(values=np.array([["a"]] * 2000)), "record must hold numbers"),
    (dict(values=np.full((2000, 1), 1e305)), "overflow the filter"),
    (dict(n=0, values=np.zeros((0, 1))), "at least two finite times"),
    (dict(channel_theta=0.7), r"the record file's channel_theta is \[0.7\], the scenario's \[\[measure\]\] "
                              r"detectors record \[0.0\]"),
])
def test_a_record_file_the_filter_cannot_take_is_refused(records, message):
    from sde_com.simulation.conditional import filter_record_file

    with pytest.raises(sde_com.errors.UserError, match=message):
        filter_record_file(_record_file(**records), [{"mode": "a"}], **TRAJ)


@pytest.fixture
def small_blocks(monkeypatch):
    """Filter blocks of 2 trajectories × 7 steps and time checks of 5 times: every block boundary is crossed."""
    from sde_com.simulation import conditional

    monkeypatch.setattr(conditional, "FILTER_BLOCK_STEPS", 7)
    monkeypatch.setattr(conditional, "FILTER_BLOCK_BYTES", 2 * 8 * 7 * (2 * 1 + 4))
    monkeypatch.setattr(conditional, "TIME_BLOCK", 5)


def test_the_filter_gives_the_same_bits_in_any_blocks_and_threads(small_blocks):
    """A record filtered whole on one thread and in blocks of 2 trajectories × 7 steps on 3 threads: identical
    estimates, innovations and covariances (every trajectory's sums run in step order; 11 trajectories leave a
    partial lane group and a partial block)."""
    from sde_com.simulation import conditional

    record = np.random.default_rng(3).standard_normal((11, 60, 1)) * 0.1
    blocked = conditional.kalman_filter(record, 0.01, [{"mode": "a"}], workers=3, **TRAJ)
    conditional.FILTER_BLOCK_STEPS, conditional.FILTER_BLOCK_BYTES = 1 << 16, 32 * 2**20
    whole = conditional.kalman_filter(record, 0.01, [{"mode": "a"}], **TRAJ)
    for name in ("estimate", "innovation", "cov_filter"):
        np.testing.assert_array_equal(blocked[name], whole[name], err_msg=name)


@pytest.mark.parametrize("dims", [("trajectory", "interval", "channel"), ("interval", "channel"),
                                  ("time", "channel")])
def test_a_streamed_filter_file_is_the_in_memory_one(tmp_path, small_blocks, dims):
    """``filter_record_file`` streamed to a file in small blocks (time axis included) against the same filter
    held in memory, for each layout a record file may have: the same values, bitwise, CF-clean."""
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset
    from sde_com.simulation.conditional import filter_record_file

    rng = np.random.default_rng(4)
    n, steps = 5, 40
    shape = {"trajectory": n, "interval": steps, "time": steps, "channel": 1}
    times = steps + 1 if "interval" in dims else steps
    records = xr.Dataset({"record": (dims, rng.standard_normal([shape[d] for d in dims]) * .01)},
                         coords={"time": ("time", np.arange(times) * 1e-10, {"units": "s"})})
    held = filter_record_file(records, [{"mode": "a"}], **TRAJ)
    out = filter_record_file(records, [{"mode": "a"}], output=tmp_path / "f.nc", workers=2, **TRAJ)
    streamed = read_dataset(out)
    for name in ("estimate", "innovation", "cov_filter", "time", "time_scaled", "innovation_variance",
                 "innovation_lag1"):
        np.testing.assert_array_equal(streamed[name].values, held[name].values, err_msg=name)
    assert_cf_clean(out)


def test_sde_com_filter_streams_a_record_larger_than_its_memory(tmp_path, monkeypatch):
    """A 24 MiB record (8 trajectories) filtered by ``sde-com filter`` in blocks of 1 MiB (its time axis checked
    2**16 times at a time): the Python heap's peak (tracemalloc, which numpy reports to) stays below a third of
    the record, where reading the record whole or holding its estimate (4 quadratures: 96 MiB) would exceed it;
    the file holds every step."""
    import tracemalloc

    from conftest import write_scenario

    from sde_com.benchmarks.end_to_end import WATCHED_CAVITY, _write_record
    from sde_com.cli import main
    from sde_com.results.io import read_dataset
    from sde_com.simulation import conditional

    monkeypatch.setattr(conditional, "FILTER_BLOCK_BYTES", 2**20)
    monkeypatch.setattr(conditional, "TIME_BLOCK", 2**16)
    system = sde_com.get_system("single_cavity")
    omega = system.reference_rate(system.resolve({"detuning": 1.0, "detuning_kind": "effective"}))
    record, out = tmp_path / "record.nc", tmp_path / "filtered.nc"
    steps = 24 * 2**20 // (8 * 8)
    _write_record(record, 8, steps, omega)
    scenario = write_scenario(tmp_path, WATCHED_CAVITY, "watch.toml")
    main(["filter", str(scenario), str(record), "-o", str(tmp_path / "warm.nc"), "--quiet"])  # kernels loaded
    tracemalloc.start()
    try:
        assert main(["filter", str(scenario), str(record), "-o", str(out), "--quiet"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak / 2**20
    ds = read_dataset(out)
    assert ds.estimate.shape == (8, steps + 1, 4) and np.all(np.isfinite(ds.estimate[:, -1].values))


def test_a_record_whose_filter_does_not_settle_in_the_gains_kept_is_refused(monkeypatch):
    """The filter keeps its gains until P settles, at most FILTER_MAX_GAINS steps (here 10, which no filter from a
    thermal start settles in): a longer record is refused naming why, not filtered in unbounded memory."""
    from sde_com.simulation import conditional

    monkeypatch.setattr(conditional, "FILTER_MAX_GAINS", 10)
    with pytest.raises(sde_com.errors.UserError, match="has not settled within 10 steps of this record"):
        conditional.filter_record_file(_record_file(n=50), [{"mode": "a"}], initial="thermal", **TRAJ)


def test_a_streamed_filter_refused_part_way_leaves_no_file(tmp_path, small_blocks):
    """A NaN in the record's last block is found only when that block is read: the streamed filter stops with the
    one-line refusal, and neither the output nor its temporary file is left behind."""
    from sde_com.simulation.conditional import filter_record_file

    values = np.random.default_rng(1).standard_normal((60, 1)) * 0.01
    values[-1] = np.nan
    with pytest.raises(sde_com.errors.UserError, match="record holds NaN or infinite values"):
        filter_record_file(_record_file(n=60, values=values), [{"mode": "a"}], output=tmp_path / "out.nc", **TRAJ)
    assert list(tmp_path.iterdir()) == []


def test_a_long_record_is_uniform_to_rounding():
    """Times k·dt of a long record carry a few ulp of the largest time: still uniform (8 ulp of jitter here, more
    than the 1e-9 relative spread of a 5e6-step record's differences)."""
    from sde_com.simulation.conditional import filter_record_file

    out = filter_record_file(_record_file(jitter=8 * np.finfo(float).eps), [{"mode": "a"}], **TRAJ)
    assert out.estimate.shape == (2001, 4) and out.cov_filter.dims == ("filter_time", "row", "col")


def test_the_filters_gains_are_not_frozen_while_an_entry_still_relaxes():
    """A measured hot mode (n = 1e8) beside an unmeasured vacuum mode relaxing at 1e-3, from P = 0: per step its
    P changes by ~1e-14 of the hot entry long before it has relaxed (0.495 at t = 2300, 0.4998 at t = 4000). The
    settling rule counts the distance to the fixed point (the change over 1 − ρ²), not the step: the kept P
    agrees with the recursion run to the end."""
    from sde_com.physics import measurement

    A, D = np.diag([-1.0, -1.0, -1e-3, -1e-3]), np.diag([2e8, 2e8, 1e-3, 1e-3])
    C, G = measurement_matrices([Channel(0, 0.0, 1.0)], [1.0], 2)
    Phi, H, Q = measurement.record_step(A, D, C, G, 0.1)
    kept = measurement.filter_gains(Phi, H, Q, np.zeros((4, 4)), 40000)[2]
    settled = measurement._settled
    try:
        measurement._settled = lambda *args: False  # the full recursion
        full = measurement.filter_gains(Phi, H, Q, np.zeros((4, 4)), 40000)[2]
    finally:
        measurement._settled = settled
    np.testing.assert_allclose(measurement.at_step(kept, 40000), full[40000], rtol=1e-10, atol=1e-12)


def test_a_conditional_run_too_large_is_refused_by_its_estimate(tmp_path, capsys):
    assert_refused(tmp_path, capsys, WATCH.replace("trajectories = 4", "trajectories = 100000000000"),
                   r"would need about .* available")


def test_conditional_trajectories_over_a_grid_are_each_points_own(tmp_path):
    """[model] sweeps the detuning of a watched cavity: each point of the file is conditional_simulate's run at
    that point (bitwise: the same units, added in the same order), and the file is CF-clean."""
    from conftest import run_cli
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset
    from sde_com.simulation.conditional import conditional_simulate

    out = tmp_path / "grid.nc"
    assert run_cli(tmp_path, WATCH.replace("detuning = 1.0", "detuning = [0.9, 1.0]"), out) == 0
    ds = read_dataset(out)
    assert ds.estimate.dims == ("detuning", "trajectory", "time", "quadrature")
    for detuning in (0.9, 1.0):
        alone = conditional_simulate([{"mode": "a", "efficiency": 0.8}], dt=0.01, duration=3.0, trajectories=4,
                                     seed=2, initial="thermal", save_every=0.01, traces=3, system="single_cavity",
                                     detuning=detuning, detuning_kind="effective")
        for name in ("cov_filter", "cov_error", "estimate", "record", "innovation_variance"):
            np.testing.assert_array_equal(ds[name].sel(detuning=detuning).values, alone[name].values)
    assert_cf_clean(out)
