"""Time-domain simulator: estimates against their references within their own error bars."""

import math

import numba
import numpy as np
import pytest
import scipy.stats
import xarray as xr
from conftest import PEAK, resonator_thermal

import sde_com
from sde_com.cli import main
from sde_com.physics.linear import discrete_stationary_covariance, euler_maruyama_step, lyapunov_covariance_reference
from sde_com.physics.resonator.device import Device
from sde_com.simulation.simulate import SimulationSettings, simulate, simulate_point

FAMILY_ALPHA = 1e-3  # family-wise false-alarm rate of every z-score test below


def z_threshold(n_entries: int, n_trajectories: int) -> float:
    """Bonferroni bound on max |t| over n_entries estimates with Student-t(n_trajectories − 1) errors.

    Each entry of V is a mean over independent trajectories, its error the spread over them / √n, so
    (estimate − truth)/error is Student-t; the max over the entries exceeds this with probability ≤ α.
    """
    return float(scipy.stats.t.ppf(1 - FAMILY_ALPHA / (2 * n_entries), df=n_trajectories - 1))


@pytest.fixture(scope="module")
def peak():
    d = Device()
    p = sde_com.resonator.operating_points(d, PEAK)[0]
    return d, p.drift, p.diffusion


@pytest.mark.parametrize("dt", [0.25, 1.0])
def test_exact_scheme_matches_lyapunov_within_error_bars(peak, dt):
    d, A, D = peak
    n = 64
    s = SimulationSettings(method="exact", dt=dt, burn_in=0.0, duration=600.0, trajectories=n, seed=11)
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    V = lyapunov_covariance_reference(A / d.omega_m, D / d.omega_m)
    np.testing.assert_array_equal(out["cov_ref"], V)
    assert out["zscore_max"] < z_threshold(21, n)
    assert abs(out["logneg_sim"] - out["logneg"]) < 4 * out["logneg_sim_err"]


def test_a_factor_two_in_the_noise_is_caught(peak):
    d, A, D = peak
    n = 64
    s = SimulationSettings(method="exact", dt=1.0, duration=600.0, trajectories=n, seed=11)
    wrong = simulate_point(A, 2 * D, d.omega_m, resonator_thermal(), s)
    V = lyapunov_covariance_reference(A / d.omega_m, D / d.omega_m)
    z = np.abs(wrong["cov_sim"] - V) / wrong["cov_sim_err"]
    assert np.nanmax(z) > 3 * z_threshold(21, n)


def test_em_samples_its_discrete_lyapunov_covariance_and_is_biased_linearly(peak):
    d, A, D = peak
    A_s, D_s = A / d.omega_m, D / d.omega_m
    V = lyapunov_covariance_reference(A_s, D_s)
    dts = np.array([0.01, 0.005, 0.0025, 0.00125])
    bias = [np.linalg.norm(discrete_stationary_covariance(*euler_maruyama_step(A_s, D_s, dt)) - V) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(bias), 1)[0]
    # EM is weak order 1: the stationary covariance error is c₁dt + c₂dt², so the fitted slope is
    # 1 + O(dt/dt_max) with dt_max ≈ 0.15 the EM stability limit here; for dt ≤ dt_max/15 that is a few
    # per cent (a first-order-wrong or second-order scheme gives 0.5 or 2)
    assert 0.95 < slope < 1.08
    n = 48
    for dt in (0.04, 0.02):
        s = SimulationSettings(method="em", dt=dt, burn_in=40.0, duration=400.0, trajectories=n, seed=5)
        out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
        assert out["zscore_max"] < z_threshold(21, n)  # agrees with V_dt ...
        assert out["zscore_max_continuous"] > z_threshold(21, n)  # ... and the bias against V is resolved


def test_transient_matches_the_moment_solution(peak):
    d, A, D = peak
    n = 3000
    s = SimulationSettings(method="exact", dt=0.5, duration=40.0, trajectories=n, seed=3, initial="thermal",
                           save_times=(0.0, 5.0, 10.0, 20.0, 40.0))
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    # 21 entries × 5 times; per-time errors from the spread of u_k u_l over trajectories (t-distributed)
    assert np.nanmax(out["zscore_max"][1:]) < z_threshold(21 * 5, n)
    np.testing.assert_allclose(out["cov_moment"][0], np.diag([0.5] * 4 + [d.n_thermal + 0.5] * 2))
    # the ensemble E_N follows the moment solution's within its jackknife error (4σ: 5 times)
    late = slice(3, 5)
    assert np.all(np.abs(out["logneg_sim"][late] - out["logneg_ref"][late]) <= 4 * out["logneg_sim_err"][late])


def test_em_transient_matches_its_discrete_moments(peak):
    d, A, D = peak
    n = 3000
    s = SimulationSettings(method="em", dt=0.01, duration=10.0, trajectories=n, seed=4, initial="zero",
                           save_every=2.5)
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    assert np.nanmax(out["zscore_max"][1:]) < z_threshold(21 * 4, n)


def test_same_seed_threads_and_chunks_give_identical_datasets():
    kw = dict(detuning=[0.7, 0.8])
    base = SimulationSettings(method="exact", dt=0.5, duration=50.0, trajectories=37, seed=9, traces=3,
                              save_every=5.0, initial="thermal")
    a = simulate(base, **kw)
    xr.testing.assert_identical(a, simulate(base, **kw))
    xr.testing.assert_identical(a, simulate(SimulationSettings(**{**base.__dict__, "chunk": 5}), **kw))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(base, **kw)
    finally:
        numba.set_num_threads(threads)
    xr.testing.assert_identical(a, one)
    other = simulate(SimulationSettings(**{**base.__dict__, "seed": 10}), **kw)
    assert not np.array_equal(a.trace.values, other.trace.values)


def test_traces_follow_the_recursion_with_their_recorded_noise(peak):
    d, A, D = peak
    s = SimulationSettings(method="exact", dt=0.3, duration=30.0, trajectories=4, traces=2, save_every=0.3)
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    from sde_com.simulation.simulate import step_maps

    F, _ = step_maps(A / d.omega_m, D / d.omega_m, 0.3, "exact")
    tr, nz = out["trace"], out["noise"]
    np.testing.assert_allclose(tr[:, 1:], tr[:, :-1] @ F.T + nz[:, 1:], rtol=1e-12, atol=1e-12)
    assert np.all(nz[:, 0] == 0)


def test_error_bars_are_calibrated(peak):
    """Reported errors match the actual scatter of the estimates over independent seeds (V and E_N)."""
    d, A, D = peak
    V = lyapunov_covariance_reference(A / d.omega_m, D / d.omega_m)
    n, seeds = 24, 240
    iu = np.triu_indices(6)
    est, err, en, en_err = [], [], [], []
    for seed in range(seeds):
        s = SimulationSettings(method="exact", dt=1.0, duration=200.0, trajectories=n, seed=seed)
        out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
        est.append(out["cov_sim"][iu])
        err.append(out["cov_sim_err"][iu])
        en.append(out["logneg_sim"])
        en_err.append(out["logneg_sim_err"])
    est, err = np.array(est), np.array(err)
    # about 68 % within 1σ (Student-t(23): 0.672); binomial σ over seeds (entries of one seed may be
    # fully correlated, so count seeds): 3σ ≈ 0.09
    frac = float(np.mean(np.abs(est - V[iu]) < err))
    expected = scipy.stats.t.cdf(1, n - 1) - scipy.stats.t.cdf(-1, n - 1)
    assert abs(frac - expected) < 3 * math.sqrt(expected * (1 - expected) / seeds)
    # scatter of the estimates / rms of the reported errors → 1. The sample std over 240 seeds has a
    # relative error 1/√(2·239) ≈ 4.6 %, so ±15 % is > 3σ even with fully correlated entries, while error
    # bars 25 % too large or too small (ratio 0.8 or 1.33) fail
    ratio = np.std(est, axis=0, ddof=1) / np.sqrt(np.mean(err**2, axis=0))
    assert 0.85 < np.median(ratio) < 1.15
    en_ratio = np.std(en, ddof=1) / np.sqrt(np.mean(np.square(en_err)))  # the jackknife error of E_N
    assert 0.85 < en_ratio < 1.15


def test_guard_rails(peak):
    d, A, D = peak
    with pytest.raises(ValueError, match=r"dt = 0.5 is unstable for Euler–Maruyama.*dt < 0\.15.*'exact'"):
        simulate_point(A, D, d.omega_m, resonator_thermal(), SimulationSettings(method="em", dt=0.5))
    unstable = [p for p in sde_com.resonator.operating_points(Device(), 0.2) if not p.stable][0]
    with pytest.raises(ValueError, match="unstable"):
        simulate_point(unstable.drift, unstable.diffusion, d.omega_m, resonator_thermal(), SimulationSettings())
    s = SimulationSettings(initial="thermal", save_times=(0.0, 1.0), duration=1.0, allow_unstable=True)
    out = simulate_point(unstable.drift, unstable.diffusion, d.omega_m, resonator_thermal(), s)
    assert np.isfinite(out["cov_sim"]).all()


@pytest.mark.parametrize("kw, fragment", [
    (dict(dt=0.0), "dt must be"), (dict(dt=-1.0), "dt must be"), (dict(trajectories=0), "trajectories must be"),
    (dict(method="rk4"), "method must be one of"), (dict(initial="hot"), "initial must be one of"),
    (dict(duration=0.0), "duration must be"), (dict(seed=-1), "seed must be"),
    (dict(traces=5, trajectories=2), "traces must be <="),
    (dict(save_times=(0.0, 500.0), duration=10.0), "save_times must lie within"),
])
def test_settings_reject_bad_values(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        SimulationSettings(**kw)


@pytest.mark.parametrize("table, fragment", [
    ("dt = 0.0", "dt must be"), ("trajectories = 0", "trajectories must be"), ('method = "rk4"', "method must be"),
    ('method = "em"\ndt = 0.5', "unstable for Euler"), ("speed = 3", "unknown key"),
])
def test_cli_bad_simulation_input_exits_2_and_writes_nothing(tmp_path, capsys, table, fragment):
    f = tmp_path / "s.toml"
    base = "" if table.startswith("trajectories") else "trajectories = 2\n"
    f.write_text(f"[model]\ndetuning = 0.75\n[simulate]\nduration = 10.0\n{base}{table}\n")
    out = tmp_path / "out.nc"
    assert main(["run", str(f), "-o", str(out)]) == 2
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_streamed_traces_equal_in_memory(tmp_path):
    from sde_com.results.io import read_dataset
    from sde_com.runs.engine import run_scenario_to_file
    from sde_com.runs.scenario import parse_scenario, run_scenario

    sc = parse_scenario("[model]\ndetuning = [0.7, 0.8]\n[simulate]\ndt = 0.5\nduration = 20.0\ntrajectories = 6\n"
                        "traces = 4\nsave_every = 1.0\nchunk = 3\n")
    path = tmp_path / "t.nc"
    run_scenario_to_file(sc, path)
    on_disk = read_dataset(path)
    in_memory = run_scenario(sc)
    np.testing.assert_array_equal(on_disk.trace.values, in_memory.trace.values)
    np.testing.assert_array_equal(on_disk.noise.values, in_memory.noise.values)
    assert on_disk.time.attrs["units"] == "s"
    xr.testing.assert_allclose(on_disk.drop_vars(["trace", "noise"]), in_memory.drop_vars(["trace", "noise"]))


def test_time_averaging_memory_does_not_grow_with_steps():
    """Peak memory of a time-averaging run is the same for 10³ and 10⁶ steps (a stored path would be
    4 trajectories × 10⁶ steps × 6 × 8 B = 192 MB)."""
    import subprocess
    import sys

    code = """
import resource, numpy as np
from sde_com.simulation.simulate import SimulationSettings, simulate_point
from sde_com.resonator import Device, operating_points
from sde_com.physics.system import get_system
d = Device(); p = operating_points(d, 0.75)[0]
thermal = get_system("spinning_resonator").thermal_covariance({})
def run(duration):
    s = SimulationSettings(method="exact", dt=0.05, duration=duration, trajectories=4, seed=1)
    simulate_point(p.drift, p.diffusion, d.omega_m, thermal, s)
run(50.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run(50000.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    grew_kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grew_kb < 20_000  # 20 MB: allocator noise, far below the 192 MB of a stored path


def test_one_long_trajectory_uses_batch_means(peak):
    d, A, D = peak
    # 32 batches of 1000/ω_m each, ≈ 80 relaxation times (12/ω_m) per batch: batches nearly independent
    s = SimulationSettings(method="exact", dt=1.0, burn_in=50.0, duration=32_000.0, trajectories=1, seed=21)
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    assert np.all(np.isfinite(out["cov_sim_err"]))
    assert out["zscore_max"] < z_threshold(21, 32)


def test_em_steady_start_is_the_schemes_own_stationary_state(peak):
    """With initial = "steady" EM starts from V_dt, so its cross-check holds without a burn-in."""
    d, A, D = peak
    n = 2000
    s = SimulationSettings(method="em", dt=0.1, burn_in=0.0, duration=100.0, trajectories=n, seed=8)
    out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
    assert out["zscore_max"] < z_threshold(21, n)


def test_overflowed_or_missing_states_are_nan_not_unentangled():
    from sde_com.physics.gaussian import logneg_from_blocks

    assert np.isnan(logneg_from_blocks(np.full((4, 4), np.nan)))
    assert np.isnan(logneg_from_blocks(np.diag([1e300, 1e300, 1e300, 1e300])))
    with pytest.raises(ValueError, match="duration must span at least one step after the burn-in"):
        SimulationSettings(dt=1.0, burn_in=10.0, duration=0.3)


def test_bad_dt_in_a_time_step_study_exits_2_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('[model]\ndetuning = 0.75\n[simulate]\nmethod = "em"\ndt = [0.01, 0.5]\nduration = 10.0\n'
                 "trajectories = 2\n")
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert "unstable for Euler" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_batch_mean_errors_are_calibrated(peak):
    """One long trajectory per seed: the batch-means errors match the scatter over 240 seeds (±15 %, > 3σ
    of the 4.6 % relative error of a 240-sample standard deviation, as in the trajectory calibration)."""
    d, A, D = peak
    iu = np.triu_indices(6)
    est, err = [], []
    for seed in range(240):
        s = SimulationSettings(method="exact", dt=1.0, burn_in=50.0, duration=6400.0, trajectories=1, seed=seed)
        out = simulate_point(A, D, d.omega_m, resonator_thermal(), s)
        est.append(out["cov_sim"][iu])
        err.append(out["cov_sim_err"][iu])
    est, err = np.array(est), np.array(err)
    ratio = np.std(est, axis=0, ddof=1) / np.sqrt(np.mean(err**2, axis=0))
    assert 0.85 < np.median(ratio) < 1.15
