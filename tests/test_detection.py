"""Homodyne records of the output field and their Welch spectra."""

import numpy as np
import pytest
import scipy.stats

from sde_com import Device, operating_points
from sde_com.detection import homodyne_record, welch_spectrum
from sde_com.simulate import SimulationSettings, simulate_point


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
    rec = homodyne_record(out["trace"], out["noise"], kappa, dt, "U", theta)
    w, S, err = welch_spectrum(rec, dt, 1024)
    band = np.abs(w) < 0.3 * np.pi / dt  # well below Nyquist, where the EM step does not colour the noise
    z = (S[band] - 0.5) / err[band]
    # Welch estimates of independent trajectories: each bin's mean is Student-t(31) about the truth;
    # Bonferroni over the bins at a family-wise 1e-3
    threshold = scipy.stats.t.ppf(1 - 1e-3 / (2 * band.sum()), df=rec.shape[0] - 1)
    assert np.max(np.abs(z)) < threshold
    # and the record's variance is the white-noise 1/(2 dt) to its statistical error (a 2× noise error fails)
    assert rec.var() * dt == pytest.approx(0.5, rel=0.02)


def test_bad_mode_and_rates_are_refused():
    x = np.zeros((1, 3, 6))
    with pytest.raises(ValueError, match="mode must be"):
        homodyne_record(x, x, 0.6, 0.01, "W")
    with pytest.raises(ValueError, match="kappa and dt must be > 0"):
        homodyne_record(x, x, 0.0, 0.01)
