"""Output ports of any system: spectra and filtered output modes for N modes (``physics.spectra`` with a port's
vacuum input inside D), ``[system] outputs`` and ``[detect]`` for systems through the seam, and the published
claim of Genes et al., PRA 78, 032316 (2008): a filtered output mode can be more entangled with the mirror
than the intracavity mode.

Statistical checks use z-scores with the estimators' own errors, Bonferroni-corrected (family-wise α = 1e-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import xarray as xr
from conftest import ROOT, assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_matrix_system import stable_systems

import sde_com
from sde_com.errors import UserError
from sde_com.physics import spectra
from sde_com.physics.gaussian import logneg_from_blocks
from sde_com.physics.system import get_system

CAVITY = get_system("single_cavity")
VITALI = {"detuning": 1.0, "detuning_kind": "effective"}  # Vitali et al.'s Fig. 2 point (defaults: P, T)


def _branch(params=VITALI):
    b = CAVITY.branches(params)[0]
    return b, CAVITY.reference_rate(params), CAVITY.output_ports(params)["a"]


# 1. Spectra and filtered modes of N-mode systems with partial ports ----------------------------------------


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stable_systems(max_modes=3), st.integers(0, 2), st.floats(0.1, 1.0))
def test_random_systems_filtered_mode_frequency_integral_equals_augmented_lyapunov(case, port, fraction):
    """Two independent routes to the 4 × 4 covariance of (filtered output of a port, partner mode), for a port
    carrying part of its mode's noise (κ = fraction·2N ≤ min eig D): frequency integrals of T N T† and the
    Lyapunov equation of the system extended by the filter's ODE. Budget: the integrator's bound
    10·rtol·‖V‖ plus the Lyapunov solves' rounding (cond·ε ≲ 1e-13 of ‖V‖ here)."""
    n, A, D, _ = case
    if n < 2:
        return
    port %= n
    partner = (port + 1) % n
    kappa = fraction * 2 * n  # D ≥ 2N·I: the port's vacuum noise fits inside D
    rtol = 1e-10
    args = (A, D, kappa, 1.0 / 0.7, -0.9)
    V = spectra.filtered_mode_covariance(*args, port, rtol=rtol, partner=partner)
    V_ref = spectra.filtered_mode_covariance_lyapunov(*args, port, partner=partner)
    np.testing.assert_allclose(V, V_ref, rtol=0, atol=10 * rtol * np.linalg.norm(V_ref) + 1e-12 * np.abs(V_ref).max())


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stable_systems(max_modes=3), st.integers(0, 2), st.floats(0.0, math.pi))
def test_random_systems_output_spectrum_integrates_to_the_intracavity_variance(case, port, theta):
    """∫ dω/2π [S_θ(ω) − 1/2] = 2κ(V_θθ − 1/2) for any port rate κ (the cross term E[v X_inᵀ] = √(κ/2) gives
    2κ ∫ Re χ = κ; spectra's module docstring). Both sides are rates of size ~κ‖V‖; the integral converges to
    rtol 1e-10 relative: compare at 1e-8 of κ(‖V‖ + 1)."""
    n, A, D, _ = case
    port %= n
    kappa = 0.5 * 2 * n
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    e = np.zeros(2 * n)
    e[2 * port], e[2 * port + 1] = math.cos(theta), math.sin(theta)
    lhs, _ = spectra.frequency_integral(
        lambda w: spectra.output_excess_spectrum(A, D, kappa, [w], port, theta), 0.0, 1.0,
        spectra._breakpoints(A), rtol=1e-10, atol=1e-13 * kappa)
    assert abs(lhs[0] - 2 * kappa * (e @ V @ e - 0.5)) <= 1e-8 * kappa * (np.abs(V).max() + 1)


def test_a_vacuum_mode_read_out_through_its_whole_loss_is_shot_noise():
    """One damped mode in vacuum (D = κ on both quadratures, amplitude decay κ): its output is the vacuum at
    every ω, for every LO phase, whatever other (here: none) modes. A factor 2 in the port's noise fails."""
    k = 0.8
    A, D = -k * np.eye(2), k * np.eye(2)
    for theta in (0.0, 0.6, math.pi / 2):
        S = spectra.output_spectrum(A, D, k, np.linspace(-5, 5, 21), 0, theta)
        np.testing.assert_allclose(S, 0.5, rtol=0, atol=1e-15)
    with pytest.raises(UserError, match=r"an output port at κ = 1.6 s-1 on the quadratures \[0, 1\] .*D − κ P Pᵀ "
                                        r"has the eigenvalue -0.8"):
        spectra.output_spectrum(A, D, 2 * k, [0.0], 0)


def test_mode_indices_give_the_resonators_named_modes():
    """Mode 0 is 'U', mode 1 'V', the last mode (2) the mechanics: the same numbers, bit for bit."""
    p = sde_com.resonator.operating_points(sde_com.resonator.Device(), 0.75)[0]
    k = sde_com.resonator.Device().kappa
    w = np.linspace(-3, 3, 7) * 6.2e7
    for name, index in (("U", 0), ("V", 1)):
        np.testing.assert_array_equal(spectra.output_spectrum(p.drift, p.diffusion, k, w, name, 0.3),
                                      spectra.output_spectrum(p.drift, p.diffusion, k, w, index, 0.3))
    assert spectra.filtered_logneg(p.drift, p.diffusion, k, 1e-7, -6.2e7, "U") == spectra.filtered_logneg(
        p.drift, p.diffusion, k, 1e-7, -6.2e7, 0, partner=2)
    with pytest.raises(UserError, match="cannot be paired with itself"):
        spectra.filtered_logneg(p.drift, p.diffusion, k, 1e-7, -6.2e7, 0, partner=0)


# 2. The single cavity's port, by name and as matrices -------------------------------------------------------


@pytest.mark.parametrize("port, n_bath", [(0.3, 0.0), (1.0, 0.0), (0.3, 2.5), (0.7, 0.4)])
def test_a_partial_port_of_a_lossy_cavity_against_its_closed_form(port, n_bath):
    """One mode decaying at κ_tot = 1 (amplitude), read out through a port at κ ≤ κ_tot, the rest of its loss
    into a bath of n̄ quanta: D = κ + (κ_tot − κ)(2n̄ + 1) on each quadrature. Written out by hand,
    X_out = [2κ/(κ_tot − iω) − 1] X_in + √(2κ) w/(κ_tot − iω) with w the other noise, so
    S(ω) = ((2κ − κ_tot)² + ω²)/(2(κ_tot² + ω²)) + 2κ(D − κ)/(κ_tot² + ω²): 1/2 for a vacuum bath at any split.
    This checks the port's input–noise cross-correlation (a wrong √(κ/2) would break the vacuum case)."""
    k_tot, w = 1.0, np.linspace(-6.0, 6.0, 25)
    d = port + (k_tot - port) * (2 * n_bath + 1)
    A, D = -k_tot * np.eye(2), d * np.eye(2)
    expected = ((2 * port - k_tot) ** 2 + w**2) / (2 * (k_tot**2 + w**2)) + 2 * port * (d - port) / (k_tot**2 + w**2)
    for theta in (0.0, 1.1):  # a 2 × 2 complex solve per ω against the closed form: rounding, ~10 ε
        np.testing.assert_allclose(spectra.output_spectrum(A, D, port, w, 0, theta), expected, rtol=1e-13, atol=0)


def test_single_cavity_as_a_matrix_table_gives_the_named_systems_detector_view(tmp_path):
    """The built-in system's branch written out as a [system] table with outputs = { a = κ } and the same
    [detect]: the same spectra and filtered modes as `name = "single_cavity"` (the scenario path of the port:
    the table's outputs, the matrix system's ports, against the named system's)."""
    b, wm, kappa = _branch()
    rows = lambda M: "[" + ", ".join("[" + ", ".join(repr(float(x)) for x in r) + "]" for r in M) + "]"  # noqa: E731
    tail = ('[simulate]\nmethod = "em"\ndt = 0.01\nduration = 50.0\ntrajectories = 4\ntraces = 4\nseed = 2\n'
            'initial = "zero"\n[detect]\nsegment = 1024\nfilter_bandwidths = [0.5, 1.0]\nfilter_center = -1.0\n')
    named = '[system]\nname = "single_cavity"\n[model]\ndetuning = 1.0\ndetuning_kind = "effective"\n' + tail
    matrix = (f'[system]\nmodes = ["a", "m"]\ndrift = {rows(b.drift)}\ndiffusion = {rows(b.diffusion)}\n'
              f"time_scale = {wm!r}\noutputs = {{ a = {kappa!r} }}\n" + tail)
    assert run_cli(tmp_path, named, tmp_path / "n.nc") == 0
    assert run_cli(tmp_path, matrix, tmp_path / "m.nc") == 0
    with xr.open_dataset(tmp_path / "n.nc") as one, xr.open_dataset(tmp_path / "m.nc") as two:
        for name in ("spectrum_analytic", "filtered_logneg", "logneg_intracavity", "spectrum_welch"):
            np.testing.assert_array_equal(one[name].values, two[name].values, err_msg=name)
        assert float(one.filtered_logneg.max()) > 0.3


def test_genes_filtered_output_beats_the_intracavity_entanglement():
    """Genes et al. 2008: the output filtered around the Stokes sideband (centre −ω_m) is more entangled with
    the mirror than the intracavity mode, for a bandwidth near the mechanical resonance's width (here, at
    Vitali's Fig. 2 point: E_N = 0.58 at 1/τ = ω_m against 0.299 inside), and a filter much broader than the
    cavity adds vacuum and loses it (10 ω_m: 0.18). Both from independent routes (frequency integral and
    the filter's Lyapunov equation) within 1e-6, far below the margins asserted."""
    b, wm, kappa = _branch()
    inside = float(sde_com.sweep(system=CAVITY, **VITALI).logneg.isel(branch=0).sel(pair="a-m"))

    def filtered(bandwidth):
        args = (b.drift, b.diffusion, kappa, 1 / (bandwidth * wm), -wm, 0)
        V = spectra.filtered_mode_covariance_lyapunov(*args)
        en = spectra.filtered_logneg(*args)
        assert en == pytest.approx(float(logneg_from_blocks(np.ascontiguousarray(V))), abs=1e-6)
        return en

    assert inside == pytest.approx(0.299, abs=5e-4)
    assert filtered(1.0) > 1.5 * inside
    assert filtered(10.0) < inside


def test_shipped_genes_file_spectrum_agrees_with_the_transfer_function():
    """data/genes_filtered.nc: the Welch spectrum of the single cavity's homodyne records against the analytic
    one, bin by bin, Student-t(15) with Bonferroni over the bins at α = 1e-3; a factor 2 in the port's noise
    would move the shot-noise floor from 1/2 to 1 (z ~ 100 in the flat tails). Its filtered modes beat the
    intracavity E_N it records."""
    with xr.open_dataset(ROOT / "data" / "genes_filtered.nc") as ds:
        z = ((ds.spectrum_welch - ds.spectrum_analytic) / ds.spectrum_welch_err).values
        threshold = scipy.stats.t.ppf(1 - 1e-3 / (2 * z.size), df=15)
        assert np.abs(z).max() < threshold
        assert float(ds.filtered_logneg.max()) > float(ds.logneg_intracavity) > 0.29
        assert ds.attrs["mode"] == "a" and ds.attrs["partner"] == "m" and ds.attrs["system"] == "single_cavity"


# 3. Scenarios: [system] outputs and [detect] ----------------------------------------------------------------

MATRIX_DETECT = """
[system]
modes = ["a", "b"]
drift = [[-0.5, 0.0, 0.0, 0.2], [0.0, -0.5, -0.2, 0.0], [0.0, 0.2, -0.5, 0.0], [-0.2, 0.0, 0.0, -0.5]]
diffusion = [[0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0.5]]
{outputs}
[simulate]
method = "em"
dt = 0.01
duration = 200.0
trajectories = 8
traces = 8
seed = 1
initial = "steady"
[detect]
segment = 1024
filter_bandwidths = [0.3, 1.0]
filter_center = 0.0
{detect}
"""


def test_a_matrix_system_with_outputs_runs_detect(tmp_path):
    """Two vacuum-damped modes coupled by a beam splitter, read out through a's whole loss: a passive system in
    vacuum, so the output is shot noise (within the Welch errors) and nothing is entangled."""
    out = tmp_path / "d.nc"
    assert run_cli(tmp_path, MATRIX_DETECT.format(outputs="outputs = { a = 0.5 }", detect=""), out) == 0
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds.spectrum_analytic.values, 0.5, rtol=0, atol=1e-14)
        z = ((ds.spectrum_welch - 0.5) / ds.spectrum_welch_err).values
        assert np.abs(z).max() < scipy.stats.t.ppf(1 - 1e-3 / (2 * z.size), df=7)
        # a product of vacua: E_N = 0 up to the frequency integral's rounding of ν⁻ ≈ 1/2
        assert np.all(ds.filtered_logneg.values < 1e-9) and float(ds.logneg_intracavity) < 1e-12
        assert ds.attrs["mode"] == "a" and ds.attrs["partner"] == "b"


@pytest.mark.parametrize("outputs, detect, message", [
    ("", "", r"\[detect\] needs the capability 'output_ports': give \[system\] outputs"),
    ("outputs = { c = 0.5 }", "", r"system.outputs.c: no such mode; modes: \['a', 'b'\]"),
    ("outputs = { a = 2.0 }", "", r"system.outputs.a = 2.0: an output port at κ = 2 s-1 .* needs its vacuum input"),
    ("outputs = { a = 0.5 }", 'mode = "b"', r"detect.mode = 'b': not a mode with an output port .*ports: \['a'\]"),
    ("outputs = { a = 0.5 }", 'partner = "a"', r"detect.partner = 'a': .*one of \['b'\]"),
    ("outputs = { a = 0.25 }", "", r"detect.mode = 'a': records from traces need the port to carry all"),
    ("outputs = { a = -1.0 }", "", r"system.outputs"),
])
def test_bad_outputs_and_detect_exit_2_naming_the_key(tmp_path, capsys, outputs, detect, message):
    assert_refused(tmp_path, capsys, MATRIX_DETECT.format(outputs=outputs, detect=detect), message)
