"""A linear system given by its matrices (``sde_com.MatrixSystem``, the [system] table): validation, the
spinning resonator written out as matrices against the built-in path, and random stable N-mode systems
(hypothesis, derandomized) against independent solves.

Statistical checks use z-scores with the estimators' own errors, Bonferroni-corrected over every entry
compared (family-wise α = 1e-3, as tests/test_simulation_systems.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from conftest import assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sde_com
from sde_com import MatrixSystem
from sde_com.errors import RunWarning, UserError
from sde_com.physics.gaussian import logneg
from sde_com.resonator import Device, operating_points
from sde_com.simulation.simulate import SimulationSettings, simulate

FAMILY_ALPHA = 1e-3


def z_threshold(n_entries: int, n_trajectories: int) -> float:
    """Two-sided Bonferroni bound on max |t| over n_entries Student-t(n − 1) statistics, family-wise α."""
    return float(scipy.stats.t.ppf(1 - FAMILY_ALPHA / (2 * n_entries), df=n_trajectories - 1))


def _damped_pair(kappa=1.0, g=0.2):
    """Two vacuum-damped modes (rate κ) with a beam-splitter coupling g: a valid, stable 4 × 4 system."""
    A = np.array([[-kappa / 2, 0, 0, g], [0, -kappa / 2, -g, 0], [0, g, -kappa / 2, 0], [-g, 0, 0, -kappa / 2]])
    return A, 0.5 * kappa * np.eye(4)  # amplitudes decay at κ/2: D = κ/2 gives the vacuum, V = ½ I


@pytest.mark.parametrize("change, message", [
    (dict(drift=np.zeros((3, 3))), r"system.drift must be 4 × 4 \(2N × 2N for the N = 2 modes \['a', 'b'\]\), "
                                   r"got shape \(3, 3\)"),
    (dict(diffusion=np.zeros((4, 5))), r"system.diffusion must be 4 × 4 .*got shape \(4, 5\)"),
    (dict(drift=[[1, 2], [3]]), r"system.drift must be a 4 × 4 .* matrix of numbers"),
    (dict(drift=np.where(np.eye(4) > 0, np.nan, 0.0)),
     r"system.drift\[0\]\[0\] is nan: every entry must be a finite number"),
    (dict(diffusion=np.diag([1.0, 1.0, 1.0, 1.0]) + np.eye(4, k=1) * 1e-9),
     r"system.diffusion must be symmetric .*D\[0\]\[1\] = 1e-09 but D\[1\]\[0\] = 0"),
    (dict(diffusion=np.diag([1.0, -0.1, 1.0, 1.0])), r"positive semidefinite .*smallest eigenvalue is -0.1"),
    (dict(drift=np.eye(4)), r"system.drift is unstable .*real part 1 s-1.*allow_unstable = true"),
    (dict(modes=["a", "a"]), r"names a mode twice"),
    (dict(modes=["a", "2b"]), r"'2b' is not a mode name"),
    (dict(modes=[]), r"non-empty list of mode names"),
    (dict(time_scale=0.0), r"time_scale must be a finite rate > 0 \(s-1\), got 0.0"),
    (dict(time_scale=True), r"time_scale must be a finite rate"),
])
def test_bad_matrices_are_refused_naming_the_matrix_and_the_fault(change, message):
    A, D = _damped_pair()
    given_ = {**dict(modes=["a", "b"], drift=A, diffusion=D, time_scale=1.0), **change}
    with pytest.raises(UserError, match=message):
        MatrixSystem(**given_)


def test_symmetry_and_stability_within_the_stated_tolerances():
    A, D = _damped_pair()
    # asymmetry at 1e-13 × max|D| is rounding (1e-12 allowed): taken, and symmetrized
    system = MatrixSystem(["a", "b"], A, D + np.eye(4, k=1) * 1e-13 * D.max())
    np.testing.assert_array_equal(system.diffusion, system.diffusion.T)
    # an unstable A is taken with allow_unstable (for transients); the steady state then reports unstable
    unstable = MatrixSystem(["a", "b"], np.eye(4), D, allow_unstable=True)
    assert not bool(sde_com.sweep(system=unstable).stable.item())


def test_an_unphysical_steady_state_is_warned_of_not_refused():
    A, D = _damped_pair()
    with pytest.warns(RunWarning, match=r"violates the uncertainty relation V \+ iΩ/2 ≥ 0"):
        MatrixSystem(["a", "b"], A, 0.1 * D)  # V = 0.05 I: below the vacuum's 1/2
    # Brownian-motion damping of a mechanical mode: D has noise on p only, V is a physical thermal state
    gamma, omega, n = 0.01, 1.0, 3.0
    A_m = np.array([[0.0, omega], [-omega, -gamma]])
    D_m = np.diag([0.0, gamma * (2 * n + 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        MatrixSystem(["m"], A_m, D_m)


@pytest.fixture(scope="module")
def resonator():
    d = Device()
    point = operating_points(d, 0.75)[0]
    return d, point, MatrixSystem(["U", "V", "mech"], point.drift, point.diffusion, time_scale=d.omega_m)


def test_the_resonator_as_matrices_gives_the_built_in_steady_state(resonator):
    d, point, system = resonator
    built_in = sde_com.sweep(detuning=0.75).isel(branch=0)
    ds = sde_com.sweep(system=system).isel(branch=0)
    assert list(ds.row.values) == ["x_U", "p_U", "x_V", "p_V", "x_mech", "p_mech"]
    # two solvers of Eq. (11) (the chain's, the per-point one): each within ~cond·ε of the exact V, with the
    # Lyapunov operator's cond ≈ 2‖A‖/min|λi + λj| ≈ 18 here (A/ω_m): ~4e-15 of max|V| (measured 2e-15);
    # 1e-12 leaves a 250× margin and still fails for any wrong V
    np.testing.assert_allclose(ds.cov.values, built_in.cov.values, rtol=0, atol=1e-12 * np.abs(built_in.cov).max())
    assert float(ds.logneg.sel(pair="U-mech")) == pytest.approx(float(built_in.logneg), rel=1e-9)
    assert float(ds.logneg.sel(pair="U-V")) == pytest.approx(float(built_in.logneg_optical), rel=1e-9, abs=1e-12)


def test_the_resonator_as_matrices_gives_the_built_in_ensemble(resonator):
    """The same A, D through the same kernels: the ensemble's estimates are the same bits (a start at zero,
    so that no covariance factor differs by rounding)."""
    d, point, system = resonator
    s = SimulationSettings(method="exact", dt=0.5, duration=20.0, trajectories=64, seed=9, initial="zero",
                           save_every=5.0)
    built_in = simulate(s, detuning=0.75).isel(branch=0)
    ds = simulate(s, system=system).isel(branch=0)
    assert list(ds.pair.values) == ["U-V", "U-mech", "V-mech"]  # every pair; the resonator reports U-mech
    for name in ("cov_sim", "cov_sim_err", "logneg_sim", "logneg_sim_err"):
        new = ds[name].sel(pair="U-mech") if "pair" in ds[name].dims else ds[name]
        np.testing.assert_array_equal(new.values, built_in[name].values, err_msg=name)
    # every pair's estimate is E_N of the ensemble's V (the jackknife's full-sample value: the weighted mean of
    # its groups, cov_sim to rounding), computed here by logneg_pair
    for label, (i, j) in zip(ds.pair.values, ((0, 1), (0, 2), (1, 2)), strict=True):
        direct = [logneg(V, i, j) for V in ds.cov_sim.values[1:]]  # t = 0: V = 0, E_N infinite
        np.testing.assert_allclose(ds.logneg_sim.sel(pair=label).values[1:], direct, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ds.cov_moment.values, built_in.cov_moment.values, rtol=1e-9, atol=1e-12)


@st.composite
def stable_systems(draw, max_modes=4):
    """(A, D) of a random stable N-mode system: A = M − (max Re λ(M) + margin) I, D = B Bᵀ (any PSD D)."""
    n = draw(st.integers(1, max_modes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((2 * n, 2 * n))
    margin = draw(st.floats(0.05, 2.0))
    A = M - (np.linalg.eigvals(M).real.max() + margin) * np.eye(2 * n)
    B = rng.standard_normal((2 * n, 2 * n))
    D = B @ B.T + 2 * n * np.eye(2 * n)  # well above the vacuum's: a physical V
    return n, A, D, seed


def _quiet_system(modes, A, D):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)  # a random D can give an unphysical V: not the point here
        return MatrixSystem(modes, A, D)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stable_systems())
def test_random_systems_steady_state_equals_an_independent_lyapunov_solve(case):
    n, A, D, _ = case
    modes = [f"m{k}" for k in range(n)]
    ds = sde_com.sweep(system=_quiet_system(modes, A, D)).isel(branch=0)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)  # Bartels–Stewart, not this project's solver
    # both solves lose ~cond·ε of max|V|, cond ≈ 2‖A‖/min|λi + λj| ≤ 2·16/0.1 ≈ 300 for these draws (‖A‖ ≤ 16,
    # Re λ ≤ −0.05): ≤ ~1e-13; 1e-10 leaves a 1000× margin
    np.testing.assert_allclose(ds.cov.values, V, rtol=0, atol=1e-10 * np.abs(V).max())
    assert bool(ds.stable)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stable_systems(), st.randoms(use_true_random=False))
def test_random_systems_logneg_is_invariant_under_relabelling_the_modes(case, rnd):
    n, A, D, _ = case
    if n < 2:
        return
    order = list(range(n))
    rnd.shuffle(order)
    rows = [2 * k + q for k in order for q in (0, 1)]
    modes = [f"m{k}" for k in range(n)]
    ds = sde_com.sweep(system=_quiet_system(modes, A, D)).isel(branch=0)
    relabelled = sde_com.sweep(system=_quiet_system([modes[k] for k in order], A[np.ix_(rows, rows)],
                                                    D[np.ix_(rows, rows)])).isel(branch=0)
    for pair in ds.pair.values:
        a, b = str(pair).split("-")
        other = f"{a}-{b}" if f"{a}-{b}" in relabelled.pair.values else f"{b}-{a}"
        # the same V up to a permutation, solved again (~1e-13 of max|V|, above); E_N = −ln 2ν₋ amplifies that
        # by ~‖V‖/ν₋, which D ≥ 2N·I keeps O(10): 1e-7 leaves a wide margin
        assert float(relabelled.logneg.sel(pair=other)) == pytest.approx(float(ds.logneg.sel(pair=pair)),
                                                                          rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("seed", [3, 17])
@pytest.mark.parametrize("n_modes", [1, 3, 5])
def test_random_systems_exact_ensembles_agree_with_lyapunov(n_modes, seed):
    """Exact-discretization ensembles of random stable systems: cov_sim against the Lyapunov V with the
    estimator's errors, Bonferroni over the d(d+1)/2 entries. Would catch a factor 2 in D: V doubles, ~50σ."""
    rng = np.random.default_rng(seed)
    d = 2 * n_modes
    M = rng.standard_normal((d, d))
    A = M - (np.linalg.eigvals(M).real.max() + 0.5) * np.eye(d)
    B = rng.standard_normal((d, d))
    D = B @ B.T + d * np.eye(d)
    system = _quiet_system([f"m{k}" for k in range(n_modes)], A, D)
    relax = 1.0 / 0.5  # the slowest mode decays at ≥ 0.5: burn-in 10 relaxation times
    n = 256
    s = SimulationSettings(method="exact", dt=0.1, burn_in=10 * relax, duration=100.0, trajectories=n, seed=seed)
    ds = simulate(s, system=system).isel(branch=0)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    np.testing.assert_allclose(ds.cov.values, V, rtol=0, atol=1e-10 * np.abs(V).max())  # as above
    iu = np.triu_indices(d)
    z = np.abs((ds.cov_sim.values - V) / ds.cov_sim_err.values)[iu]
    assert z.max() < z_threshold(len(iu[0]), n)
    assert float(ds.zscore_max_continuous) < z_threshold(len(iu[0]), n)


def _toml_matrix(M: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(repr(float(x)) for x in row) + "]" for row in M) + "]"


def _system_table(modes, A, D, time_scale) -> str:
    return (f"[system]\nmodes = {list(modes)!r}\ndrift = {_toml_matrix(A)}\ndiffusion = {_toml_matrix(D)}\n"
            f"time_scale = {time_scale!r}\n").replace("'", '"')


def test_the_resonator_as_a_system_table_gives_the_built_in_numbers(resonator, tmp_path):
    """[system] with the resonator's A and D (rad/s, written out in full precision) through ``sde-com run``:
    the steady state to the rounding of two solvers, the ensemble to the bit (a start at zero)."""
    d, point, _ = resonator
    table = _system_table(["U", "V", "mech"], point.drift, point.diffusion, d.omega_m)
    simulate_table = ('[simulate]\nmethod = "exact"\ndt = 0.5\nduration = 20.0\ntrajectories = 64\nseed = 9\n'
                      'initial = "zero"\nsave_every = 5.0\n')
    assert run_cli(tmp_path, table, tmp_path / "steady.nc") == 0
    steady = sde_com.read_dataset(tmp_path / "steady.nc").isel(branch=0)
    built_in = sde_com.sweep(detuning=0.75).isel(branch=0)
    scale = np.abs(built_in.cov).max()  # tolerance: test_the_resonator_as_matrices_gives_the_built_in_steady_state
    np.testing.assert_allclose(steady.cov.values, built_in.cov.values, rtol=0, atol=1e-12 * scale)
    assert float(steady.logneg.sel(pair="U-mech")) == pytest.approx(float(built_in.logneg), rel=1e-9)
    assert run_cli(tmp_path, table + simulate_table, tmp_path / "ensemble.nc") == 0
    ensemble = sde_com.read_dataset(tmp_path / "ensemble.nc").isel(branch=0)
    s = SimulationSettings(method="exact", dt=0.5, duration=20.0, trajectories=64, seed=9, initial="zero",
                           save_every=5.0)
    reference = simulate(s, detuning=0.75).isel(branch=0)
    for name in ("cov_sim", "cov_sim_err", "logneg_sim"):
        new = ensemble[name].sel(pair="U-mech") if "pair" in ensemble[name].dims else ensemble[name]
        np.testing.assert_array_equal(new.values, reference[name].values, err_msg=name)
    assert list(ensemble.row.values) == ["x_U", "p_U", "x_V", "p_V", "x_mech", "p_mech"]


TWO_MODES = _system_table(["a", "b"], *_damped_pair(), 1.0)


@pytest.mark.parametrize("text, message", [
    (TWO_MODES + "[model]\ndetuning = 0.75\n", r"give \[model\] .* or \[system\] .*, not both"),
    (TWO_MODES + '[simulate]\ndt = 0.1\nduration = 10.0\nsave_every = 1.0\n[drive]\nkind = "ramp"\n',
     r"\[drive\] needs the capability 'mean_field_dynamics': it needs a parametrised system"),
    (TWO_MODES + '[simulate]\nmethod = "em"\ndt = 0.01\nduration = 10.0\n[wigner]\n',
     r"\[wigner\] needs the capability 'truncated_wigner': it needs a parametrised system"),
    (TWO_MODES + '[simulate]\ndt = 0.1\nduration = 5.0\ntraces = 2\ninitial = "zero"\n[plot]\nkind = "traces"\n'
     'y = ["x_U"]\n', r"plot.y: unknown quadrature\(s\) \['x_U'\]; allowed: \['x_a', 'p_a', 'x_b', 'p_b'\]"),
    (TWO_MODES + '[plot]\nkind = "lines"\ny = ["photons"]\n', r"photons"),
    ('[system]\nmodes = ["a"]\ndrift = [[-1.0, 0.0], [0.0, -1.0]]\n',
     r"\[system\] needs 'name', 'hamiltonian' \(with 'modes'\), or 'diffusion' with the other matrices"),
    (TWO_MODES.replace("diffusion = [[0.5, 0.0", "diffusion = [[0.5, 0.3"),
     r"\[system\] system.diffusion must be symmetric .*D\[0\]\[1\] = 0.3 but D\[1\]\[0\] = 0"),
    (TWO_MODES.replace('time_scale = 1.0', 'time_scale = -1.0'), r"system.time_scale"),
    (TWO_MODES.replace("modes =", "mode ="), r"unknown key.*system.*mode"),
    (TWO_MODES + '[output]\nvariables = ["logneg_max"]\n', r"output.variables: unknown \['logneg_max'\]"),
    (TWO_MODES + '[output]\nvariables = ["cov_sim"]\n', r"'cov_sim' cannot be written .*give a \[simulate\]"),
    (TWO_MODES + '[simulate]\nduration = 5.0\n[output]\nvariables = ["logneg"]\n',
     r"'logneg' cannot be written .*logneg_sim"),
    (TWO_MODES + '[simulate]\ninitial = "thermal"\nburn_in = 10.0\n', r"does not define a thermal state"),
])
def test_bad_system_scenarios_exit_2_naming_the_fault(tmp_path, capsys, text, message):
    assert_refused(tmp_path, capsys, text, message)


def test_a_system_scenario_with_traces_draws_its_own_quadratures(tmp_path):
    """The default figure of a [system] run with traces: the x quadratures of its first and last mode,
    time axis ω_ref t."""
    from sde_com.plot import dataset_spec, plot_dataset

    text = TWO_MODES + ('[simulate]\ndt = 0.1\nduration = 5.0\ntrajectories = 4\ntraces = 2\nsave_every = 1.0\n'
                        'initial = "zero"\n')
    assert run_cli(tmp_path, text, tmp_path / "out.nc") == 0
    ds = sde_com.read_dataset(tmp_path / "out.nc")
    spec = dataset_spec(ds)
    assert spec["kind"] == "traces" and spec["y"] == ["x_a", "x_b"]
    plot_dataset(ds, tmp_path / "out.png")
    assert (tmp_path / "out.png").stat().st_size > 0


@pytest.mark.parametrize("extra", ["", '[simulate]\ndt = 0.1\nduration = 5.0\ntrajectories = 4\ntraces = 2\n'
                                       'save_every = 1.0\ninitial = "zero"\n',
                                   '[simulate]\ndt = [0.1, 0.2]\nduration = 5.0\ntrajectories = 32\n'])
def test_system_outputs_are_cf_and_name_the_systems_modes(tmp_path, extra):
    """A [system] file (steady state, transient with traces, dt study) passes the CF checker, and no
    long_name speaks of the resonator's modes, quadratures or ω_m (``catalogue.label_for_system``)."""
    from test_cf import assert_cf_clean

    out = tmp_path / "out.nc"
    assert run_cli(tmp_path, TWO_MODES + extra, out) == 0
    assert_cf_clean(out)
    ds = sde_com.read_dataset(out)
    names = {v: ds[v].attrs.get("long_name", "") for v in ds.variables}
    for word in ("xU", "driven mode", "ω_m"):
        assert not [v for v, text in names.items() if word in text], (word, names)
    if "trace" in ds:
        assert "x_a, p_a, x_b, p_b" in names["quadrature"] and "pair of modes" in names["logneg_sim"]


def test_a_matrix_system_pickles_for_dask_workers():
    """Units go to Dask workers pickled: the system comes back with the same modes, matrices and time scale."""
    import pickle

    system = MatrixSystem(["a", "b"], *_damped_pair(), time_scale=2.0)
    back = pickle.loads(pickle.dumps(system))
    assert back.modes == system.modes and back.quadratures == system.quadratures and back.time_scale == 2.0
    np.testing.assert_array_equal(back.drift, system.drift)
    np.testing.assert_array_equal(back.diffusion, system.diffusion)


@pytest.mark.parametrize("text, drawn", [
    (TWO_MODES + '[plot]\nkind = "matrix"\nvariable = "cov"\n', "matrix"),
    (TWO_MODES + '[simulate]\ndt = 0.1\nduration = 5.0\ntraces = 2\nsave_every = 1.0\ninitial = "zero"\n'
     '[plot]\nkind = "traces"\ny = ["x_a", "p_b"]\n', "traces"),
    ('[system]\nname = "single_cavity"\n[model]\ndetuning = [0.5, 1.0]\ndetuning_kind = "effective"\n'
     'temperature = [0.4, 10.0, 20.0]\n[plot]\nkind = "lines"\nx = "temperature"\ny = ["logneg", "photons"]\n',
     "lines"),
])
def test_plot_tables_of_system_runs_are_checked_and_drawn(tmp_path, text, drawn):
    """A [plot] table of a [system] run is checked against the run's outline (its quadratures, pairs and the
    mean-field values its system writes) and the figure is drawn."""
    out = tmp_path / "out.nc"
    assert run_cli(tmp_path, text, out, "--plot") == 0
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")



def test_a_file_says_how_to_make_its_system_again():
    """A run from Python records the matrices (and the default time scale it took: the spectral radius of A, here
    |−κ/2 ± i g| = √(κ²/4 + g²)), so the system, and the run, can be made again from the file alone."""
    import json

    import xarray as xr

    A, D = _damped_pair(kappa=1.0, g=0.2)
    system = MatrixSystem(["a", "b"], A, D)
    assert system.time_scale == pytest.approx(np.hypot(0.5, 0.2), rel=1e-11)  # rounded to 12 digits
    s = SimulationSettings(method="exact", dt=0.5, duration=20.0, trajectories=8, seed=3, initial="zero",
                           save_every=5.0)
    ds = simulate(s, system=system)
    definition = json.loads(ds.attrs["system_definition"])
    assert definition["name"] == "matrix" and ds.attrs["system"] == "matrix" and "references" not in ds.attrs
    again = MatrixSystem(**{k: v for k, v in definition.items() if k != "name"})
    assert ds.attrs["omega_ref"] == again.time_scale == system.time_scale
    xr.testing.assert_identical(simulate(s, system=again), ds)
    assert ds["zscore_max"].attrs["long_name"].endswith("over the 10 independent entries")  # 4 × 4
