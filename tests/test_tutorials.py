"""The tutorials' scripts (docs/tutorials/*.py, shown verbatim on the documentation pages) run, write their
figures, and show the physics they claim.

Statistical thresholds are Bonferroni bounds: with m comparisons of an estimate against its reference in
units of its own standard error, P(max |z| > z*) <= m * P(|T| > z*) = ALPHA when z* is the two-sided
quantile at ALPHA / m. The errors are themselves estimated (from n independent trajectories, or from the
32 jackknife groups for E_N), so the quantile is Student's t with n - 1 (or 31) degrees of freedom rather
than the normal one. Seeds are fixed in the scripts, so each test is deterministic; ALPHA = 1e-3 is the
chance that a correct code would fail one had the seed been drawn at random.
"""

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

pytest.importorskip("matplotlib")

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
ALPHA = 1e-3
JACKKNIFE_DOF = 31  # sde_com's E_N errors: leave-one-group-out jackknife over 32 groups of trajectories
N_COV_ENTRIES = 21  # independent entries of a symmetric 6 x 6 covariance


def bonferroni(m: int, dof: int) -> float:
    """Two-sided |z| bound that m comparisons exceed with probability <= ALPHA."""
    return float(student_t.ppf(1.0 - ALPHA / (2 * m), dof))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_figure(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 10_000


def test_transient_tutorial(tmp_path):
    r = load("transient").main(tmp_path)
    check_figure(r["figure"])
    sim, err, ref = r["logneg_sim"], r["logneg_sim_err"], r["logneg_ref"]
    # Starts separable (thermal mechanics, E_N = 0 exactly for the moment solution) and ends at the steady state.
    assert ref[0] == 0.0
    assert abs(ref[-1] - r["logneg_steady"]) < 1e-3 * r["logneg_steady"]
    # The final E_N agrees with the moment solution within its jackknife error (one comparison).
    assert abs(sim[-1] - ref[-1]) < bonferroni(1, JACKKNIFE_DOF) * err[-1]
    # ... and so does every entangled snapshot. Only where V(t) gives E_N > 0.05 (> 5 errors above 0): near 0
    # the max(0, ·) in E_N clips the estimate and its error is not Gaussian.
    entangled = ref > 0.05
    assert entangled.sum() > 20
    z = np.abs(sim - ref)[entangled] / err[entangled]
    assert z.max() < bonferroni(int(entangled.sum()), JACKKNIFE_DOF)
    # Every covariance entry at every snapshot against V(t): 21 entries x snapshots, errors from 20000
    # trajectories (t with that many dof is normal to the digits that matter).
    m = N_COV_ENTRIES * len(r["time"])
    assert np.nanmax(r["zscore_max"]) < bonferroni(m, 20000 - 1)


def test_steady_state_tutorial(tmp_path):
    r = load("steady_state").main(tmp_path)
    check_figure(r["figure"])
    # Exact scheme: 21 independent covariance entries against the Lyapunov V, errors from 64 trajectories.
    assert r["zscore_max"] < bonferroni(N_COV_ENTRIES, r["trajectories"] - 1)
    assert abs(r["logneg_sim"] - r["logneg"]) < bonferroni(1, JACKKNIFE_DOF) * r["logneg_sim_err"]
    # EM against its own stationary covariance V_dt: 21 entries at each of the dt values.
    m = N_COV_ENTRIES * len(r["dt"])
    assert np.max(r["em_zscore_max"]) < bonferroni(m, r["em_trajectories"] - 1)
    # The E_N of each EM ensemble matches E_N(V_dt), i.e. its bias against V is the scheme's, ...
    z = np.abs(r["bias_sim"] - r["bias_ref"]) / r["bias_err"]
    assert z.max() < bonferroni(len(r["dt"]), JACKKNIFE_DOF)
    # ... which is resolved at the largest dt (the figure's point) ...
    assert abs(r["bias_sim"][-1]) > 5 * r["bias_err"][-1]
    # ... and first order in dt: the fitted slope of log|E_N(V_dt) - E_N(V)| against log dt is deterministic
    # (no sampling); O(dt²) terms move it by a few per cent over this factor-16 range of dt.
    assert 0.9 < r["bias_order"] < 1.1


def test_traces_tutorial(tmp_path):
    r = load("traces").main(tmp_path)
    check_figure(r["figure"])
    assert r["dataset"].exists()
    n = r["trajectories"]
    # Variance of each of the 6 quadratures against the diagonal of V, errors from n trajectories.
    assert np.abs(r["zscore"]).max() < bonferroni(6, n - 1)
    # Autocorrelation of q at every lag against (e^{Aτ} V)_qq (the union bound needs no independence
    # between lags).
    z = np.abs(r["acf"] - r["acf_ref"]) / r["acf_err"]
    assert z.max() < bonferroni(len(z), n - 1)
    # The lag-0 autocorrelation is the variance of q (the same estimator twice).
    assert r["acf"][0] == pytest.approx(r["variance"][4], rel=1e-12)


def test_own_system_tutorial(tmp_path):
    r = load("own_system").main(tmp_path)
    check_figure(r["figure"])
    assert r["dataset"].exists()
    # the steady state of the matrices against E_N = ln(1 + 2χ/κ): a 4 × 4 Lyapunov solve whose operator has
    # cond ≈ 2‖A‖/min|λi + λj| ≤ 2(κ/2 + χ)/(κ − 2χ) ≤ 5 here, so ~1e-15; 1e-10 is a wide margin
    np.testing.assert_allclose(r["logneg"], r["analytic"], rtol=1e-10)
    # E_N(t) against the moment solution with its jackknife errors (t = 0 is the exact vacuum: no test)
    z = np.abs(r["en"] - r["en_ref"])[1:] / r["en_err"][1:]
    assert z.max() < bonferroni(len(z), JACKKNIFE_DOF)
    # V(t) entries against the discrete moments, errors from 4096 trajectories: 10 entries per time
    assert np.nanmax(r["zscore_max"]) < bonferroni(10 * len(r["en"]), 4095)


def test_hamiltonian_tutorial(tmp_path):
    r = load("hamiltonian").main(tmp_path)
    check_figure(r["figure"])
    g, delta, stable = r["g"], r["delta"], r["stable"]
    # red side: stable exactly below the static limit det A = 0 (4g²|δ| = δ² + κ²/4), away from the limit by
    # more than one grid step (0.02), where the grid point's own decision could go either way
    limit = r["static_limit"]
    for j, d in enumerate(delta):
        if d <= -0.2:
            far = np.abs(g - limit(d)) > 0.02
            np.testing.assert_array_equal(stable[far, j], (g < limit(d))[far])
        elif d >= 0.2:  # blue side: the mechanics is amplified as soon as the coupling beats its tiny damping
            assert not stable[g >= 0.02, j].any()
    # E_N exists exactly where the point is stable, and the red sideband entangles
    assert np.array_equal(np.isnan(r["logneg"]), ~stable)
    assert np.nanmax(r["logneg"]) > 0.3
    # the Python-built system is the scenario's: the same E_N up to the rounding of sums taken in another order
    np.testing.assert_allclose(r["logneg_cut"], r["logneg_file_cut"], rtol=1e-9, atol=1e-12)


def test_watching_tutorial(tmp_path):
    r = load("watching").main(tmp_path)
    check_figure(r["figure"])
    phonons = r["phonons"]
    # watching purifies: the conditional occupation falls with η, below the unconditional one throughout
    assert np.all(np.diff(phonons) < 0) and phonons[0] < r["phonons_unwatched"]
    assert phonons[-2] < 1.0 < r["phonons_unwatched"]  # η = 0.8: below one phonon
    assert np.all(r["logneg"] > r["logneg_unwatched"])
    # the ensemble's estimation error against the filter's P: 10 independent entries at each of 2001 saved
    # times (2000 trajectories; the normal quantile)
    rows, cols = np.triu_indices(4)
    z = np.abs(r["zscore_filter"][:, rows, cols])
    assert z.max() < bonferroni(z.size, 1999)
    inn = r["innovation"]
    assert abs(inn["innovation_variance"][0] - 1) < bonferroni(2, 10**6) * inn["innovation_variance_err"][0]
    assert abs(inn["innovation_lag1"][0]) < bonferroni(2, 10**6) * inn["innovation_lag1_err"][0]
    # the filter over the file's record gives the run's estimate back (the same arithmetic: bitwise measured)
    np.testing.assert_allclose(r["estimate_again"], r["estimate"], rtol=0, atol=1e-12 * np.abs(r["estimate"]).max())


def test_feedback_tutorial(tmp_path):
    r = load("feedback").main(tmp_path)
    check_figure(r["figure"])
    conditional, open_loop = r["conditional"], r["open_loop"]
    for eta, phonons in r["phonons"].items():
        assert np.all(phonons < open_loop)  # the loop cools at every measurement rate
        if eta == 1.0:  # V_fb = V_c + Σ: never below the conditional state of the same detector
            assert np.all(phonons >= conditional - 1e-9 * conditional)
        if eta >= 0.5:  # the ground state, between imprecision (slow measurement) and backaction (fast)
            i = int(np.argmin(phonons))
            assert phonons[i] < 1.0 and 0 < i < phonons.size - 1
    # more efficient detection cools further at every power
    etas = sorted(r["phonons"])
    assert all(np.all(r["phonons"][b] < r["phonons"][a]) for a, b in itertools.pairwise(etas))
    # the closed-loop ensemble against its moments: 10 independent entries at 31 saved times (2000 trajectories)
    rows, cols = np.triu_indices(4)
    z = np.abs(r["zscore"][:, rows, cols])
    assert z.max() < bonferroni(z.size, 1999)
    # and at its last time, 120/ω_m after a thermal start (833 phonons), on the closed loop's steady state
    assert abs(r["sim"][-1] - r["steady"]) < bonferroni(1, 1999) * r["sim_err"][-1]
    assert r["steady"] < 1.0


def test_modulated_tutorial(tmp_path):
    r = load("modulated").main(tmp_path)
    check_figure(r["figure"])
    # zero depth is the unmodulated steady state; the maximum over the period grows with the depth while the
    # state is stable, and the mean stays below the unmodulated value (measured: it falls)
    for frequency in r["mean"]:
        stable = r["rate"][frequency] < 0
        assert r["mean"][frequency][0] == pytest.approx(r["unmodulated"], rel=1e-9)
        assert np.all(np.diff(r["max"][frequency][stable]) > 0)
        assert np.all(r["mean"][frequency][stable][1:] < r["unmodulated"])
        assert np.all(np.isnan(r["mean"][frequency][~stable]))  # no periodic state where it is unstable
    # at Ω = ω_m the coupling's modulation is parametrically unstable within the depths shown; at 2ω_m it is not
    assert not np.all(r["rate"][1.0] < 0) and np.all(r["rate"][2.0] < 0)
    # the scenario file and the Python call give the same E_N over the phase
    assert r["file_stable"]
    np.testing.assert_allclose(r["file_logneg"], r["python_logneg"], rtol=0, atol=1e-12)
    # the full model under a modulated drive (its limit cycle): stable, entangled over the whole period, and below
    # the unmodulated steady state throughout (measured 0.18–0.27 against 0.299)
    assert r["drive_stable"] and np.all(r["drive_logneg"] > 0) and np.all(r["drive_logneg"] < r["unmodulated"])
