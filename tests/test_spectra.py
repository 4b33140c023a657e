"""Stationary spectra, output fields and the filtered output mode (sde_com.spectra; issue 5, items 3–4)."""

import math

import numpy as np
import pytest

import sde_com
from sde_com.physics import spectra
from sde_com.physics.gaussian import is_physical, logneg_from_blocks

DEVICE = sde_com.resonator.Device()
OMEGA_M = DEVICE.omega_m
KAPPA = DEVICE.kappa
# Rounding level for O(1) quantities built from a few 6×6 complex solves with entries up to ~ω_m.
ROUNDING = 1e-12


@pytest.fixture(scope="module")
def peak():
    """The paper's Fig. 2 peak: Device() defaults, Δ_c = 0.75 ω_m, ccw input (one stable branch)."""
    point = sde_com.resonator.operating_points(DEVICE, 0.75)[0]
    assert point.stable
    return point


@pytest.fixture(scope="module")
def vacuum():
    """The same device without drive (P = 0): no mean field, so G = 0 and the optics is vacuum-driven."""
    device = sde_com.resonator.Device(power=0.0)
    point = sde_com.resonator.operating_points(device, 0.75)[0]
    assert point.alpha_u == 0 and point.stable
    return device, point


def integration_budget(V, rtol):
    """Error bound that frequency_integral enforces: 10·rtol·‖V‖_F (it raises beyond that)."""
    return 10.0 * rtol * np.linalg.norm(V)


# 1. Spectral matrix ↔ Lyapunov ---------------------------------------------------------------------


def test_spectral_matrix_is_hermitian_psd_and_conjugate_symmetric(peak):
    w = np.linspace(-3, 3, 13) * OMEGA_M
    S = spectra.spectral_matrix(peak.drift, peak.diffusion, w)
    assert S.shape == (13, 6, 6)
    np.testing.assert_allclose(S, np.conj(np.swapaxes(S, 1, 2)), atol=ROUNDING * np.abs(S).max())
    assert np.linalg.eigvalsh(S).min() >= -ROUNDING * np.abs(S).max()
    # u(t) real ⇒ S(−ω) = S(ω)* (w is symmetric about 0).
    np.testing.assert_allclose(S[::-1], np.conj(S), atol=ROUNDING * np.abs(S).max())


def test_spectral_matrix_integrates_to_lyapunov_covariance(peak):
    A, D = peak.drift, peak.diffusion
    rtol = 1e-10
    V, err = spectra.frequency_integral(lambda w: spectra.spectral_matrix(A, D, w)[0].real, 0.0, OMEGA_M,
                                        spectra._breakpoints(A), rtol=rtol)
    V_ref = sde_com.lyapunov_covariance_reference(A / OMEGA_M, D / OMEGA_M)
    # Budget: the integrator's own error bound plus the Lyapunov solver's rounding (~1e-15 relative).
    np.testing.assert_allclose(V, V_ref, rtol=0, atol=integration_budget(V_ref, rtol) + ROUNDING)


def test_unstable_point_gives_nan_not_zero():
    point = sde_com.resonator.operating_points(DEVICE, -0.5)[0]
    assert not point.stable
    A, D = point.drift, point.diffusion
    assert np.all(np.isnan(spectra.spectral_matrix(A, D, [0.0, OMEGA_M])))
    assert np.all(np.isnan(spectra.output_spectrum(A, D, KAPPA, [0.0, OMEGA_M])))
    assert np.all(np.isnan(spectra.filtered_mode_covariance(A, D, KAPPA, 1 / OMEGA_M, -OMEGA_M)))
    assert math.isnan(spectra.filtered_logneg(A, D, KAPPA, 1 / OMEGA_M, -OMEGA_M))


# 2. Output spectra: shot noise and the integral identity ----------------------------------------------


@pytest.mark.parametrize("Omega, J", [(0.0, 0.0), (8e3, 0.0), (23e3, 0.3 * OMEGA_M)])
def test_vacuum_driven_cavity_output_is_shot_noise(Omega, J):
    # With no drive the cavity is a passive, lossless-to-output linear system: the 4×4 map of input to output
    # quadratures of (U, V) is unitary at every ω (also with J and a Sagnac shift), so each output quadrature
    # has exactly the vacuum spectrum 1/2.
    device = sde_com.resonator.Device(power=0.0, Omega=Omega, J=J)
    point = sde_com.resonator.operating_points(device, 0.75)[0]
    w = np.concatenate([np.linspace(-4, 4, 41), [0.75, -0.75, 1.0, -1.0]]) * OMEGA_M
    for mode in ("U", "V"):
        for theta in (0.0, 0.4, math.pi / 2, 2.5):
            S = spectra.output_spectrum(point.drift, point.diffusion, device.kappa, w, mode, theta)
            np.testing.assert_allclose(S, 0.5, rtol=0, atol=ROUNDING)
            # The same from the transfer function C(ω) of the input–output relation, c_θ N c_θ† (N: the joint
            # covariance of the system's noise and the port's input).
            C = spectra.output_transfer(point.drift, device.kappa, w, mode)
            c = math.cos(theta) * C[:, 0] + math.sin(theta) * C[:, 1]
            N = spectra.port_noise(point.diffusion, device.kappa, mode)
            direct = np.einsum("wk,kl,wl->w", c, N, np.conj(c))
            np.testing.assert_allclose(direct, 0.5, rtol=0, atol=ROUNDING)


def test_output_spectrum_matches_transfer_function_form(peak):
    # output_spectrum is evaluated as shot noise + excess (no cancellation in the tails); check it against the
    # direct form c_θ D c_θ† at finite ω, where both are accurate to rounding.
    w = np.linspace(-3, 3, 31) * OMEGA_M
    C = spectra.output_transfer(peak.drift, KAPPA, w, "U")
    N = spectra.port_noise(peak.diffusion, KAPPA, "U")
    for theta in (0.0, 0.9, 2.0):
        c = math.cos(theta) * C[:, 0] + math.sin(theta) * C[:, 1]
        direct = np.einsum("wk,kl,wl->w", c, N, np.conj(c)).real
        S = spectra.output_spectrum(peak.drift, peak.diffusion, KAPPA, w, "U", theta)
        np.testing.assert_allclose(S, direct, rtol=1e-10)


def test_output_spectrum_is_real_nonnegative_and_above_shot_noise_somewhere(peak):
    w = np.linspace(-3, 3, 61) * OMEGA_M
    for theta in (0.0, 1.0, math.pi / 2):
        S = spectra.output_spectrum(peak.drift, peak.diffusion, KAPPA, w, "U", theta)
        assert S.dtype == float and np.all(S >= 0.0)
        assert S.max() > 0.5  # thermal noise of the mechanics is imprinted on the driven mode's output


@pytest.mark.parametrize("mode, Omega, J", [("U", 0.0, 0.0), ("U", 8e3, 0.2 * OMEGA_M), ("V", 8e3, 0.2 * OMEGA_M)])
def test_output_spectrum_integrates_to_intracavity_variance(mode, Omega, J):
    # Derived identity (see module docs): with e_θ the quadrature direction of the mode,
    #   S_θ(ω) − 1/2 = 2κ [e_θᵀ S_uu(ω) e_θ − Re e_θᵀ χ(ω) e_θ]   (D = κ on the optical rows),
    # and ∫ dω/2π S_uu = V, ∫ dω/2π Re χ(ω) = χ(t = 0) = I/2 (χ(t) = e^{At}θ(t), midpoint at the jump), so
    #   ∫ dω/2π [S_θ(ω) − 1/2] = 2κ (V_θθ − 1/2).
    device = sde_com.resonator.Device(Omega=Omega, J=J)
    point = next(p for p in sde_com.resonator.operating_points(device, 0.75) if p.stable)
    A, D, V = point.drift, point.diffusion, point.cov
    rows = {"U": (0, 1), "V": (2, 3)}[mode]
    rtol = 1e-10
    for theta in (0.0, 0.7, math.pi / 2, 2.2):
        e = np.zeros(6)
        e[rows[0]], e[rows[1]] = math.cos(theta), math.sin(theta)
        lhs, _ = spectra.frequency_integral(
            lambda w, th=theta: spectra.output_excess_spectrum(A, D, device.kappa, [w], mode, th),
            0.0, OMEGA_M, spectra._breakpoints(A), rtol=rtol, atol=1e-3 * rtol * device.kappa)
        rhs = 2.0 * device.kappa * (e @ V @ e - 0.5)
        # Both sides are rates (rad/s) of size ~κ; the integral is converged to rtol relative (and 1e-13 κ
        # absolute), the Lyapunov V to rounding: compare at 1e-8 κ.
        assert abs(lhs[0] - rhs) <= 1e-8 * device.kappa, (theta, lhs, rhs)


# 3. Filtered output mode: a proper bosonic mode ------------------------------------------------------


def test_filter_is_normalized():
    # ∫ |g(ω)|² dω/2π = 1 for any τ and Ω_f: b inherits [b, b†] = 1 from the output field.
    for tau, center in [(1 / OMEGA_M, 0.0), (30 / OMEGA_M, -OMEGA_M), (0.01 / OMEGA_M, 2 * OMEGA_M)]:
        val, _ = spectra.frequency_integral(
            lambda w, t=tau, c=center: np.atleast_1d(abs(spectra.filter_response(w, t, c)) ** 2), center,
            1 / tau, rtol=1e-12)
        assert abs(val[0] - 1.0) < 1e-10


@pytest.mark.parametrize("tau_wm, center_wm", [(0.1, 0.0), (1.0, -1.0), (10.0, 1.0), (1e3, -1.0), (1e4, 0.75)])
def test_filtered_mode_of_vacuum_output_is_vacuum(vacuum, tau_wm, center_wm):
    device, point = vacuum
    rtol = 1e-10
    V = spectra.filtered_mode_covariance(point.drift, point.diffusion, device.kappa, tau_wm / OMEGA_M,
                                         center_wm * OMEGA_M, rtol=rtol)
    # Budget: the integrator's error bound, set by the largest entries (mechanics, n_m + 1/2 ≈ 270).
    atol = integration_budget(V, rtol)
    np.testing.assert_allclose(V[:2, :2], 0.5 * np.eye(2), rtol=0, atol=atol)
    np.testing.assert_allclose(V[2:, 2:], (device.n_thermal + 0.5) * np.eye(2), rtol=0, atol=atol)
    assert np.abs(V[:2, 2:]).max() == 0.0  # G = 0: the optics never sees the mechanics
    # A product state: E_N = 0 up to the integration error of ν⁻ ≈ 1/2 (E_N ≈ 2|δν⁻| ≤ 2·atol).
    assert 0.0 <= logneg_from_blocks(np.ascontiguousarray(V)) <= 2 * atol


@pytest.mark.parametrize("tau_wm, center_wm", [(0.1, -1.0), (1.0, -1.05), (3.0, 1.05), (30.0, -1.1), (1e3, 0.0)])
def test_filtered_mode_covariance_matches_augmented_lyapunov_and_is_physical(peak, tau_wm, center_wm):
    # Two independent routes to the same 4×4 covariance: frequency integrals of T D T† (Genes et al. 2008) and
    # the Lyapunov equation of the state (u, X_b, Y_b), where the filter is the ODE ḃ = −(1/τ + iΩ_f)b +
    # √(2/τ) a_out. Agreement at the integrator's budget also checks the a(ω)/a†(−ω) mixing of the filter.
    args = (peak.drift, peak.diffusion, KAPPA, tau_wm / OMEGA_M, center_wm * OMEGA_M)
    rtol = 1e-10
    V = spectra.filtered_mode_covariance(*args, rtol=rtol)
    V_ref = spectra.filtered_mode_covariance_lyapunov(*args)
    np.testing.assert_allclose(V, V_ref, rtol=0, atol=integration_budget(V_ref, rtol) + ROUNDING)
    assert is_physical(V)


# 4. Entanglement of the filtered output mode with the mechanics ---------------------------------------


def test_filtered_logneg_is_nonnegative_and_zero_without_coupling(peak, vacuum):
    device, point = vacuum
    for tau_wm in (0.3, 3.0, 30.0):
        for center_wm in (-1.05, 0.0, 1.05):
            tau, center = tau_wm / OMEGA_M, center_wm * OMEGA_M
            assert spectra.filtered_logneg(peak.drift, peak.diffusion, KAPPA, tau, center) >= 0.0
            # Product state (vacuum ⊗ thermal): 0 up to the integration error of ν⁻ (E_N ≈ 2|δν⁻| ≲ 1e-9 here,
            # budget 10·rtol·‖V‖ with rtol = 1e-9, ‖V‖ ≈ 380).
            assert spectra.filtered_logneg(point.drift, point.diffusion, device.kappa, tau, center) < 1e-8


def test_stokes_sideband_carries_the_entanglement(peak):
    # The two-mode-squeezing part of the optomechanical coupling creates photon–phonon pairs: the photon
    # goes to the Stokes sideband ω_l − ω_m, i.e. Ω_f = −ω_m in this module's convention (a ∝ e^{−iωt}).
    # At the Fig. 2 peak the mechanical resonance is pulled to ≈ 1.05 ω_m (eigenvalues of A).
    A, D = peak.drift, peak.diffusion
    bandwidths = (0.3, 1.0, 3.0, 10.0)  # τ ω_m
    stokes = [spectra.filtered_logneg(A, D, KAPPA, t / OMEGA_M, -1.05 * OMEGA_M) for t in bandwidths]
    anti_stokes = [spectra.filtered_logneg(A, D, KAPPA, t / OMEGA_M, 1.05 * OMEGA_M) for t in bandwidths]
    assert all(s > a for s, a in zip(stokes, anti_stokes, strict=True))
    assert anti_stokes[2:] == [0.0, 0.0]  # a filter narrower than the sideband separation isolates anti-Stokes
    # Bandwidth dependence: a filter of bandwidth ~ the mechanical linewidth (≈ 0.085 ω_m at this point) beats
    # both a very broad one (which adds uncorrelated vacuum) and the intracavity mode itself.
    assert max(stokes) == stokes[2] and stokes[2] > 2 * stokes[0]
    assert stokes[2] > peak.logneg


def test_narrow_filter_far_from_sidebands_decouples(peak):
    # A filter of bandwidth 1/τ at a frequency where the output carries no resonant mechanical signal averages
    # the output over a time τ: its correlation with the instantaneous (q, p) falls as 1/√τ, and b tends to
    # the shot-noise-like state of that spectral slice; E_N → 0.
    A, D = peak.drift, peak.diffusion
    taus = np.array([10.0, 100.0, 1000.0]) / OMEGA_M
    cross = []
    for tau in taus:
        V = spectra.filtered_mode_covariance(A, D, KAPPA, tau, 3.0 * OMEGA_M)
        cross.append(np.linalg.norm(V[:2, 2:]))
        assert logneg_from_blocks(np.ascontiguousarray(V)) == 0.0
    slope = np.polyfit(np.log(taus), np.log(cross), 1)[0]
    # Slope of log|cross| vs log τ: −1/2 asymptotically; at τω_m ≥ 10 the filter is already 10× narrower than
    # every resonance, so corrections are O(1/(τ·width)) ≲ a few %.
    assert -0.55 < slope < -0.45
