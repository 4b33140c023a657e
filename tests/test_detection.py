"""Homodyne records of the output field and their Welch spectra."""

import numpy as np
import pytest
import scipy.stats
from conftest import PEAK

from sde_com.physics.measurement import record_from_traces
from sde_com.resonator import Device, operating_points
from sde_com.simulation.detection import welch_spectrum
from sde_com.simulation.simulate import SimulationSettings, simulate_point


def vacuum_cavity_traces(n=32, duration=300.0, dt=0.01):
    # no drive: α = 0, so G = 0 and the optics is an empty cavity fed by vacuum (the damped mechanics keeps
    # Euler–Maruyama stable at this dt)
    d = Device(power=0.0, gamma_m=1e6)
    p = operating_points(d, 0.75)[0]
    s = SimulationSettings(method="em", dt=dt, duration=duration, trajectories=n, traces=n, seed=3)
    out = simulate_point(p.drift, p.diffusion, d.omega_m, d.n_thermal, s)
    return out, d.kappa / d.omega_m, dt


@pytest.mark.parametrize("theta", [0.0, 0.7, np.pi / 2])
def test_vacuum_driven_empty_cavity_output_is_shot_noise_flat(theta):
    out, kappa, dt = vacuum_cavity_traces()
    rec = record_from_traces(out["trace"], out["noise"], kappa, dt, "U", theta)[..., 0] / (np.sqrt(2) * dt)
    w, S, err = welch_spectrum(rec, dt, 1024)
    band = np.abs(w) < 0.3 * np.pi / dt  # well below Nyquist, where the EM step does not colour the noise
    z = (S[band] - 0.5) / err[band]
    # Welch estimates of independent trajectories: each bin's mean is Student-t(31) about the truth;
    # Bonferroni over the bins at a family-wise 1e-3
    threshold = scipy.stats.t.ppf(1 - 1e-3 / (2 * band.sum()), df=rec.shape[0] - 1)
    assert np.max(np.abs(z)) < threshold
    # per bin, E[rec²] dt = 2κ·Var(X)·dt + 1/2 = 1/2 + κ dt (X_n is independent of the step's own noise,
    # vacuum Var(X) = 1/2); the relative standard error of the variance of N ≈ 1e6 near-white samples is
    # √(2/N) ≈ 0.14 %, so 5σ = 0.7 % (a 2× noise error is off by 100 %)
    assert rec.var() * dt == pytest.approx(0.5 + kappa * dt, rel=5 * np.sqrt(2 / rec.size))


def test_bad_mode_and_rates_are_refused():
    x = np.zeros((1, 3, 6))
    with pytest.raises(ValueError, match="mode must be"):
        record_from_traces(x, x, 0.6, 0.01, "W")
    with pytest.raises(ValueError, match="kappa and dt must be > 0"):
        record_from_traces(x, x, 0.0, 0.01)


def test_welch_spectrum_agrees_with_the_analytic_output_spectrum():
    """At the Fig. 2 peak: band power of the excess noise, and bin by bin where the spectrum is smooth."""
    import scipy.integrate
    import scipy.signal

    import sde_com
    from sde_com.physics.spectra import output_excess_spectrum

    d = Device()
    n, dt, seg = 32, 0.005, 4096
    s = SimulationSettings(method="em", dt=dt, duration=400.0, trajectories=n, traces=n, seed=3)
    ds = sde_com.detect(s, detuning=PEAK, direction="ccw", **d.as_dict(), theta=0.0, segment=seg,
                        filter_bandwidths=(1.0,))
    # 1. excess power within |ω| < 4 ω_m, per trajectory (Welch's window redistributes power across
    #    neighbouring bins but keeps its total, so a band much wider than the resolution compares exactly)
    out_field = ds.record.values[..., 0] / (np.sqrt(2) * dt)  # X_θ,out from the record ΔY
    f, p = scipy.signal.welch(out_field, fs=1 / dt, nperseg=seg, return_onesided=False, detrend=False)
    w = 2 * np.pi * f
    band = np.abs(w) < 4.0
    per_traj = ((p[:, band] - 0.5) * (f[1] - f[0])).sum(axis=1)
    op = operating_points(d, PEAK)[0]
    p_ref = scipy.integrate.quad(lambda x: output_excess_spectrum(op.drift, op.diffusion, d.kappa,
                                                                  np.array([x * d.omega_m]))[0],
                                 -4.0, 4.0, points=[-1.0, 0.0, 1.0], limit=200)[0] / (2 * np.pi)
    z = (per_traj.mean() - p_ref) / (per_traj.std(ddof=1) / np.sqrt(n))
    # one Student-t(31) statistic; the EM step biases the spectrum by O(ω_m dt) = 0.5 %, below the error
    assert abs(z) < scipy.stats.t.ppf(1 - 1e-3 / 2, df=n - 1)
    # 2. bin by bin where the analytic spectrum varies little over the resolution 2π/(seg dt) ≈ 0.3 ω_m
    smooth = (np.abs(ds.omega.values) > 4.0)
    zb = ((ds.spectrum_welch - ds.spectrum_analytic) / ds.spectrum_welch_err).values[smooth]
    assert np.max(np.abs(zb)) < scipy.stats.t.ppf(1 - 1e-3 / (2 * smooth.sum()), df=n - 1)
    # the filtered mode is entangled with the mechanics at the Stokes sideband
    assert float(ds.filtered_logneg[0]) > 0.1


@pytest.mark.parametrize("simulate, detect, fragment", [
    ('method = "exact"\ndt = 0.5\ntraces = 2\n', "", "method = 'em'"),
    ('method = "em"\ndt = 0.01\n', "", "traces >= 1"),
    ('method = "em"\ndt = 0.01\ntraces = 2\n', "segment = 4\n", "detect.segment"),
    ('method = "em"\ndt = 0.01\ntraces = 2\n', "filter_bandwidths = [0.0]\n", "filter_bandwidths"),
])
def test_bad_detect_scenarios_exit_2(tmp_path, capsys, simulate, detect, fragment):
    from sde_com.cli import main

    f = tmp_path / "s.toml"
    f.write_text(f"[model]\ndetuning = 0.75\n[simulate]\nduration = 10.0\ntrajectories = 2\n{simulate}"
                 f"[detect]\n{detect}")
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_single_point_tables_are_exclusive_and_keep_their_own_variables(tmp_path, capsys):
    from sde_com.cli import main

    base = ('[model]\ndetuning = 0.75\n[simulate]\nmethod = "em"\ndt = 0.01\nduration = 10.0\ntrajectories = 2\n'
            "traces = 2\n")
    f = tmp_path / "s.toml"
    f.write_text(base + "[detect]\n[wigner]\n")
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert "at most one of the tables" in capsys.readouterr().err
    f.write_text(base + '[detect]\n[output]\nvariables = ["logneg"]\n')  # a sweep variable, not the detector's
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert "spectrum_welch" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


COARSE = """
[system]
name = "single_cavity"
[model]
detuning = 1.0
detuning_kind = "effective"
[simulate]
method = "em"
dt = 0.005
duration = 100.0
trajectories = 16
traces = 16
seed = 3
initial = "steady"
[detect]
segment = SEGMENT
"""


def test_a_spectrum_that_cannot_be_trusted_says_so_and_why():
    """A segment too short to resolve the mechanical peak (Welch resolution 2π/(256 dt) = 4.9 ω_m against a
    width of 0.1 ω_m) gives a spectrum far off the analytic one: warned of, naming the segment; with a segment
    that resolves it (16384 samples: 0.077 ω_m; 16 trajectories of 20000 samples) no warning (the bound is
    Bonferroni at 1e-3 over the bins)."""
    import warnings

    from conftest import run_text

    from sde_com.errors import RunWarning

    with pytest.warns(RunWarning, match=r"Welch spectrum disagrees .* give a longer segment"):
        run_text(COARSE.replace("SEGMENT", "256"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        run_text(COARSE.replace("SEGMENT", "16384"))
