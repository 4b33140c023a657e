"""The truncated-Wigner check of the linearization."""

import numpy as np
import pytest
import scipy.stats

from sde_com.cli import main
from sde_com.resonator import Device
from sde_com.simulation.simulate import SimulationSettings
from sde_com.simulation.wigner import truncated_wigner_arrays

N_TRAJ = 64
# Bonferroni over 21 entries at a family-wise 1e-3, Student-t over trajectories (as in test_simulate)
THRESHOLD = float(scipy.stats.t.ppf(1 - 1e-3 / 42, df=N_TRAJ - 1))


def truncated_wigner_check(device, detuning, direction, s):
    """The check at a resonator's operating point given by its Device."""
    params = {"detuning": detuning, "direction": direction, **device.as_dict()}
    return truncated_wigner_arrays("spinning_resonator", params, s)


def settings(duration=200.0):
    return SimulationSettings(method="em", dt=0.01, burn_in=20.0, duration=duration, trajectories=N_TRAJ, seed=1)


def test_agrees_with_the_linearized_model_at_the_paper_parameters():
    r = truncated_wigner_check(Device(), 0.75, "ccw", settings())
    assert r["zscore_max"] < THRESHOLD  # the nonlinear ensemble samples the linear EM's V_dt
    z = np.abs(r["difference"]) / r["difference_err"]
    assert np.nanmax(z) < THRESHOLD  # and on the same noise the nonlinearity is not resolved
    # (relative size of the nonlinear correction ~ fluctuation / mean amplitude ~ 1/√N ~ 1e-5)
    assert np.abs(r["difference"]).max() < 1e-5 * np.abs(r["cov_ref"]).max()


def test_resolves_the_breakdown_at_one_photon_and_strong_coupling():
    d = Device(mass=5e-21, power=1e-11, temperature=0.0)  # G₀/κ ≈ 0.53, ≈ 1.4 photons
    r = truncated_wigner_check(d, 1.0, "ccw", settings(400.0))
    z = np.abs(r["difference"]) / r["difference_err"]
    assert np.nanmax(z) > 3 * THRESHOLD
    assert r["logneg_tw"] < r["logneg_lin"] - 0.05  # the linearized E_N overstates it here


def test_is_linear_when_the_coupling_vanishes():
    # G₀ ∝ m^(-1/2): a heavy mechanics decouples, the nonlinear terms vanish, the paths coincide
    # (a damped mechanics keeps Euler–Maruyama stable at this dt without optomechanical damping)
    r = truncated_wigner_check(Device(mass=1e3, gamma_m=1e7), 0.75, "ccw", settings(50.0))
    assert np.abs(r["difference"]).max() < 1e-9 * np.abs(r["cov_ref"]).max()


@pytest.mark.parametrize("simulate, fragment", [
    ('method = "exact"\ndt = 0.5\n', "method = 'em'"),
    ('method = "em"\ndt = 0.01\nsave_every = 1.0\n', "no snapshots"),
])
def test_bad_wigner_scenarios_exit_2(tmp_path, capsys, simulate, fragment):
    f = tmp_path / "s.toml"
    f.write_text(f"[model]\ndetuning = 0.75\n[simulate]\nduration = 10.0\ntrajectories = 2\n{simulate}[wigner]\n")
    assert main(["run", str(f), "-o", str(tmp_path / "out.nc")]) == 2
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]
