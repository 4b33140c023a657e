"""Time-dependent drives: mean-field ODE, per-step maps, ensembles against the moment ODE."""

import numpy as np
import pytest
import scipy.stats
from conftest import PEAK

from sde_com.kernels import ensemble as kernels
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.resonator import Device, operating_points, simulate_drive
from sde_com.simulation.drive import Drive, mean_field_trajectory
from sde_com.simulation.simulate import SimulationSettings, step_maps


def test_mean_field_ode_relaxes_to_the_steady_branch():
    d = Device()
    sol, _ = mean_field_trajectory("spinning_resonator", {"detuning": PEAK, "direction": "ccw", **d.as_dict()},
                                   Drive(kind="ramp", rise_time=20.0), 600.0)
    z = sol(600.0)
    p = operating_points(d, PEAK)[0]
    photons = (z[0] ** 2 + z[1] ** 2) * (d.epsilon / d.omega_m) ** 2
    # the slowest mode decays in ≈ 12/ω_m: after 580/ω_m at full drive the transient is e^-48 ≈ 1e-21 of
    # the state; the ODE tolerance (1e-11 relative) bounds what is left
    assert photons == pytest.approx(abs(p.alpha_u) ** 2, rel=1e-8)
    assert z[4] * d.omega_m / d.G0 == pytest.approx(p.q_s, rel=1e-8)


def test_constant_maps_reproduce_the_constant_kernel():
    d = Device()
    p = operating_points(d, PEAK)[0]
    F, L = (np.ascontiguousarray(m) for m in step_maps(p.drift / d.omega_m, p.diffusion / d.omega_m, 0.3, "exact"))
    u0 = np.random.default_rng(0).normal(size=(37, 6))
    steps = np.array([0, 5, 50, 200], dtype=np.int64)
    const = kernels.run_ensemble(F, L, u0, 4, 0, 200, 0, steps, 0, 1)[3]
    varying = kernels.run_ensemble_varying(np.repeat(F[None], 200, 0), np.repeat(L[None], 200, 0), u0, 4, 0, steps)
    # the same numbers through the same recursion; only the summation order may differ (rounding)
    np.testing.assert_allclose(varying, const, rtol=1e-9, atol=1e-9)


def test_constant_drive_from_the_steady_mean_field_stays_put_and_reaches_lyapunov():
    d = Device()
    s = SimulationSettings(method="exact", dt=0.5, duration=200.0, trajectories=200, initial="thermal",
                           save_times=(0.0, 200.0), seed=2)
    ds = simulate_drive(d, PEAK, "ccw", Drive(), s, mean_field_start="steady")
    p = operating_points(d, PEAK)[0]
    np.testing.assert_allclose(ds.photons.values, abs(p.alpha_u) ** 2, rtol=1e-9)
    V = lyapunov_covariance_reference(p.drift / d.omega_m, p.diffusion / d.omega_m)
    # after 200/ω_m ≈ 17 relaxation times the moment ODE is at the Lyapunov V (e^-17 ≈ 4e-8 of V0 − V)
    np.testing.assert_allclose(ds.cov_ref.values[-1], V, rtol=1e-5, atol=1e-5 * np.abs(V).max())


def test_switch_on_ensemble_follows_the_moment_ode():
    d = Device()
    n = 2000
    s = SimulationSettings(method="exact", dt=0.25, duration=100.0, trajectories=n, initial="thermal",
                           save_every=10.0, seed=2)
    ds = simulate_drive(d, PEAK, "ccw", Drive(kind="ramp", rise_time=20.0), s)
    n_t = ds.sizes["time"]
    # z-scores against the scheme's own discrete moments: Student-t, Bonferroni over 21 entries × times
    threshold = scipy.stats.t.ppf(1 - 1e-3 / (2 * 21 * n_t), df=n - 1)
    assert np.nanmax(ds.zscore_max.values) < threshold
    # the discrete moments (A frozen at each step's midpoint) track the moment ODE to O(dt²)
    late = ds.logneg_ref.values[-3:]
    assert np.all(late > 0.1)  # entangled once the drive is on (Lyapunov value 0.148)
    sim, err = ds.logneg_sim.values[-3:], ds.logneg_sim_err.values[-3:]
    assert np.all(np.abs(sim - late) < 4 * err)
    assert ds.photons.values[0] == 0.0 and ds.drive.values[0] == 0.0


@pytest.mark.parametrize("kw, fragment", [(dict(kind="step"), "drive kind must be one of"),
                                          (dict(kind="ramp", rise_time=0.0), "rise_time must be > 0"),
                                          (dict(kind="pulse", width=-1.0), "width must be > 0"),
                                          (dict(kind="samples", times=(0.0,), values=(1.0,)), "samples need")])
def test_bad_drives_are_refused(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        Drive(**kw)


def test_em_step_too_large_on_the_drive_is_refused():
    s = SimulationSettings(method="em", dt=0.5, duration=50.0, trajectories=2, initial="thermal", save_every=5.0)
    with pytest.raises(ValueError, match="unstable for Euler–Maruyama"):
        simulate_drive(Device(), PEAK, "ccw", Drive(kind="ramp", rise_time=20.0), s)


def test_envelopes():
    tau = np.array([-1.0, 0.0, 5.0, 10.0, 20.0])
    np.testing.assert_allclose(Drive(kind="ramp", rise_time=10.0).envelope(tau), [0, 0, 0.5, 1, 1], atol=1e-15)
    assert Drive(kind="pulse", start=5.0, width=2.0).envelope(5.0) == 1.0
    np.testing.assert_allclose(Drive(kind="sine", depth=0.5, frequency=np.pi / 2).envelope([0.0, 1.0]), [1, 1.5])
    np.testing.assert_allclose(Drive(kind="samples", times=(0.0, 10.0), values=(0.0, 2.0)).envelope(5.0), 1.0)


@pytest.mark.parametrize("extra, fragment", [
    ("[simulate]\nduration = 10.0\n[drive]\nkind = \"ramp\"\n", "needs a [simulate] transient"),
    ("[simulate]\nduration = 10.0\nsave_every = 1.0\n[drive]\nkind = \"ramp\"\nrise = 3\n", "unknown key"),
    ("[simulate]\nduration = 10.0\nsave_every = 1.0\n[drive]\nkind = \"ramp\"\nrise_time = -1.0\n",
     "rise_time must be > 0"),
])
def test_bad_drive_tables_exit_2_and_write_nothing(tmp_path, capsys, extra, fragment):
    from sde_com.cli import main

    f = tmp_path / "s.toml"
    f.write_text("[model]\ndetuning = 0.75\n" + extra)
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_drive_samples_from_a_file(tmp_path, capsys):
    from sde_com.cli import main
    from sde_com.results.io import read_dataset

    (tmp_path / "env.txt").write_text("# time (1/ω_m)  envelope\n0 0\n10 1\n40 1\n")
    f = tmp_path / "s.toml"
    f.write_text('[model]\ndetuning = 0.75\n[simulate]\nmethod = "exact"\ndt = 0.5\nduration = 20.0\n'
                 'trajectories = 4\ninitial = "thermal"\nsave_every = 5.0\n[drive]\nfile = "env.txt"\n')
    out = tmp_path / "out.nc"
    assert main(["run", str(f), "-o", str(out), "--quiet"]) == 0
    np.testing.assert_allclose(read_dataset(out).drive.values, [0.0, 0.5, 1.0, 1.0, 1.0])
    (tmp_path / "env.txt").write_text("0 0 1\n")
    assert main(["run", str(f), "-o", str(tmp_path / "b.nc")]) == 2
    assert "two columns" in capsys.readouterr().err
