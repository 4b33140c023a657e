"""Stationary spectra of the linear model and entanglement of a filtered output mode (issue 5, items 3–4).

Conventions (docs/physics.md; rates and frequencies in rad/s, vacuum variance 1/2):

- Linearized model u̇ = A u + v, u = (δX_U, δY_U, δX_V, δY_V, δq, δp), with v = (√(2κ) X_in^U, √(2κ) Y_in^U,
  √(2κ) X_in^V, √(2κ) Y_in^V, 0, ξ) and symmetrized white-noise correlations D δ(t − t′).
- Fourier transform f(ω) = ∫ dt e^{iωt} f(t), in the frame rotating at the laser frequency ω_l: a field
  component at the optical frequency ω_l + ω appears at +ω (a ∝ e^{−iωt}). So ω > 0 is blue of the laser,
  ω = −ω_m is the Stokes sideband and ω = +ω_m the anti-Stokes sideband. The cavity of mode j sits at
  ω = +Δ̃_j (Δ_c = ω_c − ω_l).
- Susceptibility: u(ω) = χ(ω) v(ω) with χ(ω) = −(A + iω)⁻¹, the transform of e^{At}θ(t).
- A symmetrized spectrum S(ω) of w(ω) = T(ω) v(ω) is T(ω) D T(ω)†; the equal-time symmetrized covariance of w is
  ∫ dω/2π T(ω) D T(ω)† (real: the integrand at −ω is the complex conjugate of the one at ω).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sde_com.errors import NumericalError, UserError
from sde_com.physics.gaussian import logneg_from_blocks
from sde_com.physics.stability import decide_stability

OPTICAL_MODES: tuple[str, ...] = ("U", "V")
_OPTICAL_ROWS = {"U": (0, 1), "V": (2, 3)}
_MECHANICAL_ROWS = (4, 5)

# Default relative tolerance of the frequency integrals (adaptive Gauss–Kronrod, quad_vec).
DEFAULT_RTOL = 1e-9


# Validation --------------------------------------------------------------------------------------


def _check_system(A, D) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=float)
    D = np.asarray(D, dtype=float)
    if A.shape != (6, 6) or D.shape != (6, 6):
        raise UserError(f"A and D must be 6×6 (order xU, yU, xV, yV, q, p), got {A.shape} and {D.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(D))):
        raise UserError("A and D must be finite")
    return A, D


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0.0 \
            or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number > 0 (rad/s or s), got {value!r}")
    return float(value)


def _optical_rows(mode: str) -> tuple[int, int]:
    if mode not in _OPTICAL_ROWS:
        raise UserError(f"mode must be one of {OPTICAL_MODES}, got {mode!r}")
    return _OPTICAL_ROWS[mode]


def _is_stable(A: np.ndarray) -> bool:
    """The one stability decision (``stability.decide_stability``; ω_ref = max |A_kl|, A alone is known)."""
    return decide_stability(A).stable


# Transfer functions ------------------------------------------------------------------------------


def susceptibility(A, omega) -> np.ndarray:
    """χ(ω) = −(A + iω)⁻¹, shape (n_ω, 6, 6): u(ω) = χ(ω) v(ω) for f(ω) = ∫ dt e^{iωt} f(t); ω in rad/s."""
    A = np.asarray(A, dtype=float)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    M = A[None, :, :] + 1j * w[:, None, None] * np.eye(A.shape[0])[None, :, :]
    return -np.linalg.inv(M)


def output_transfer(A, kappa: float, omega, mode: str = "U") -> np.ndarray:
    """C(ω) = √(2κ) P χ(ω) − P/√(2κ), shape (n_ω, 2, 6): (X_out, Y_out)(ω) = C(ω) v(ω).

    Input–output relation a_out = √(2κ) a − a_in, i.e. X_out = √(2κ) δX − X_in with X_in = v_k/√(2κ);
    P selects the rows (X, Y) of the optical mode ``mode``.
    """
    rows = list(_optical_rows(mode))
    kappa = _check_positive("kappa", kappa)
    chi = susceptibility(A, omega)
    P = np.eye(6)[rows]
    return math.sqrt(2.0 * kappa) * chi[:, rows, :] - P[None, :, :] / math.sqrt(2.0 * kappa)


def spectral_matrix(A, D, omega) -> np.ndarray:
    """Symmetrized spectral matrix S_uu(ω) = χ(ω) D χ(ω)†, shape (n_ω, 6, 6), Hermitian, in 1/(rad/s).

    ∫ dω/2π S_uu(ω) is the Lyapunov covariance V of Eq. (11) for a stable A. NaN where A is unstable (no
    stationary state).
    """
    A, D = _check_system(A, D)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    if not _is_stable(A):
        return np.full((w.size, 6, 6), np.nan + 0j)
    chi = susceptibility(A, w)
    return chi @ D @ np.conj(np.swapaxes(chi, 1, 2))


def output_spectrum(A, D, kappa: float, omega, mode: str = "U", theta: float = 0.0) -> np.ndarray:
    """Homodyne spectrum S_θ(ω) = c_θ(ω) D c_θ(ω)† of X_θ = cos θ X_out + sin θ Y_out (real, ≥ 0).

    Input–output relation a_out = √(2κ) a − a_in applied to the driven (``mode="U"``) or reflected (``"V"``)
    mode; θ is the local-oscillator phase (θ = 0: amplitude quadrature X, θ = π/2: Y). Shot noise is 1/2.
    ω in rad/s; NaN where A is unstable. Evaluated as e_θᵀDe_θ/(2κ) + ``output_excess_spectrum``.
    """
    A, D = _check_system(A, D)
    rows = _optical_rows(mode)
    e = np.zeros(6)
    e[rows[0]], e[rows[1]] = math.cos(theta), math.sin(theta)
    return e @ D @ e / (2.0 * _check_positive("kappa", kappa)) + output_excess_spectrum(A, D, kappa, omega, mode,
                                                                                          theta)


def output_excess_spectrum(A, D, kappa: float, omega, mode: str = "U", theta: float = 0.0) -> np.ndarray:
    """S_θ(ω) − e_θᵀDe_θ/(2κ) = 2κ e_θᵀ S_uu(ω) e_θ − 2 Re e_θᵀ χ(ω) D e_θ: the output noise above shot noise.

    From the input–output relation X_θ,out = √(2κ) e_θᵀu − e_θᵀv/√(2κ) (e_θ: the LO direction of the mode).
    Written without the subtraction S_θ − 1/2, so it keeps full relative precision where it decays as 1/ω²;
    ∫ dω/2π of it is 2κ(V_θθ − 1/2) for D = κ on the optical rows (χ(t = 0) = I/2).
    """
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    rows = _optical_rows(mode)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    if not _is_stable(A):
        return np.full(w.size, np.nan)
    e = np.zeros(6)
    e[rows[0]], e[rows[1]] = math.cos(theta), math.sin(theta)
    chi_e = e @ susceptibility(A, w)  # (n_ω, 6): e_θᵀ χ(ω)
    diag = np.einsum("wk,kl,wl->w", chi_e, D, np.conj(chi_e)).real
    return 2.0 * kappa * diag - 2.0 * (chi_e @ (D @ e)).real


# Frequency integrals -----------------------------------------------------------------------------


def frequency_integral(func: Callable[[float], np.ndarray], center: float, scale: float, points=(),
                       rtol: float = DEFAULT_RTOL, atol: float = 0.0) -> tuple[np.ndarray, float]:
    """(∫ dω/2π func(ω) over the real line, error estimate) for an array-valued func decaying like 1/ω².

    Substitution ω = center + scale·tan φ, φ ∈ (−π/2, π/2) (a Lorentzian of half-width ``scale`` becomes
    flat), then adaptive Gauss–Kronrod (scipy.integrate.quad_vec) with breakpoints at the frequencies in
    ``points`` (resonances: put them where the integrand is sharp). Raises RuntimeError if the estimated
    error exceeds max(atol, rtol·‖result‖).
    """
    phis = np.arctan((np.asarray(points, dtype=float) - center) / scale)
    phis = np.unique(phis[np.isfinite(phis) & (np.abs(phis) < 0.5 * math.pi)])
    half = 0.5 * math.pi

    def integrand(phi):
        t = math.tan(phi)
        return func(center + scale * t) * (scale * (1.0 + t * t) / (2.0 * math.pi))

    import scipy.integrate  # lazily: only the filtered (frequency-integral) measures need it

    res, err = scipy.integrate.quad_vec(integrand, -half, half, epsrel=rtol, epsabs=atol, points=list(phis),
                                        limit=2000)
    res = np.asarray(res)
    if not err <= max(atol, 10.0 * rtol * np.linalg.norm(res)):
        raise NumericalError(f"frequency integral not converged (center {center:.6g} rad/s, scale {scale:.6g} "
                             f"rad/s, rtol {rtol:g}): error estimate {err:.3g}, |result| {np.linalg.norm(res):.3g}")
    return res, float(err)


def system_resonances(A) -> tuple[np.ndarray, np.ndarray]:
    """(ω_k, w_k): resonance frequencies ω_k = −Im λ_k and half-widths w_k = −Re λ_k (rad/s) of χ(ω).

    χ(ω) = −(A + iω)⁻¹ has its poles at ω = iλ_k for the eigenvalues λ_k of A.
    """
    lam = np.linalg.eigvals(np.asarray(A, dtype=float))
    return -lam.imag, -lam.real


def _breakpoints(A, extra_centers=(), extra_widths=()) -> list[float]:
    centers, widths = system_resonances(A)
    centers = np.concatenate([centers, np.asarray(extra_centers, dtype=float)])
    widths = np.abs(np.concatenate([widths, np.asarray(extra_widths, dtype=float)]))
    pts = [centers, centers - widths, centers + widths, centers - 10 * widths, centers + 10 * widths]
    return list(np.unique(np.concatenate(pts)))


# Filtered output mode (Genes, Mari, Tombesi, Vitali, PRA 78, 032316 (2008)) ------------------------


def filter_response(omega, tau: float, center: float) -> np.ndarray:
    """g(ω) = √(2/τ)/(1/τ − i(ω − Ω_f)): transform of g(t) = √(2/τ) e^{−(1/τ + iΩ_f)t} θ(t).

    Genes et al. (2008), filter of the output modes: b(t) = ∫ g(t − s) a_out(s) ds; ∫ |g(ω)|² dω/2π = 1, so b
    is a bosonic mode.
    τ in s, Ω_f (``center``) in rad/s relative to the laser: Ω_f = −ω_m selects the Stokes sideband.
    """
    w = np.asarray(omega, dtype=float)
    return math.sqrt(2.0 / tau) / (1.0 / tau - 1j * (w - center))


def filtered_transfer(A, kappa: float, omega: float, tau: float, center: float, mode: str = "U") -> np.ndarray:
    """T(ω), shape (4, 6): (X_b, Y_b, δq, δp)(ω) = T(ω) v(ω) for the filtered output mode b.

    With a_out = (X_out + iY_out)/√2 and g = g_r + i g_i (real functions of time), X_b = g_r∗X_out − g_i∗Y_out
    and Y_b = g_i∗X_out + g_r∗Y_out; in frequency g_r(ω) = [g(ω) + g(−ω)*]/2, g_i(ω) = [g(ω) − g(−ω)*]/(2i)
    (the complex filter mixes a_out(ω) with a_out†(−ω)).
    """
    w = np.array([omega], dtype=float)
    g_plus = filter_response(w, tau, center)[0]
    g_minus = np.conj(filter_response(-w, tau, center)[0])
    g_r = 0.5 * (g_plus + g_minus)
    g_i = (g_plus - g_minus) / 2j
    M = np.array([[g_r, -g_i], [g_i, g_r]])
    rows = list(_optical_rows(mode))
    chi = susceptibility(A, w)[0]
    P = np.eye(6)[rows]
    C = math.sqrt(2.0 * kappa) * chi[rows, :] - P / math.sqrt(2.0 * kappa)
    return np.vstack([M @ C, chi[list(_MECHANICAL_ROWS), :]])


def filtered_mode_covariance(A, D, kappa: float, tau: float, center: float, mode: str = "U",
                             rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """Stationary 4×4 covariance of (X_b, Y_b, δq, δp): ∫ dω/2π Re[T(ω) D T(ω)†] (Genes et al. 2008).

    b is the output of ``mode`` (input–output relation a_out = √(2κ) a − a_in) through the causal filter of
    ``filter_response`` with inverse bandwidth τ (s) and centre Ω_f = ``center`` (rad/s, relative to the laser;
    Ω_f = −ω_m is the Stokes sideband). Vacuum variance 1/2. All NaN where A is unstable.
    """
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    tau = _check_positive("tau", tau)
    if isinstance(center, bool) or not math.isfinite(center):
        raise UserError(f"center must be a finite rate Ω_f in rad/s, got {center!r}")
    _optical_rows(mode)
    if not _is_stable(A):
        return np.full((4, 4), np.nan)

    def integrand(w):
        T = filtered_transfer(A, kappa, w, tau, center, mode)
        return (T @ D @ np.conj(T.T)).real

    points = _breakpoints(A, [center], [1.0 / tau])
    V, _ = frequency_integral(integrand, center, 1.0 / tau, points, rtol=rtol, atol=rtol)
    return 0.5 * (V + V.T)


def filtered_mode_covariance_lyapunov(A, D, kappa: float, tau: float, center: float, mode: str = "U") -> np.ndarray:
    """The same 4×4 covariance as ``filtered_mode_covariance``, from an augmented Lyapunov equation (reference).

    The filter is the linear ODE ḃ = −(1/τ + iΩ_f) b + √(2/τ) a_out, i.e. Ẋ_b = −X_b/τ + Ω_f Y_b + √(2/τ) X_out,
    Ẏ_b = −Y_b/τ − Ω_f X_b + √(2/τ) Y_out, driven by X_out = √(2κ) δX − v_X/√(2κ). The state (u, X_b, Y_b) is
    linear with noise B v, B = [I; −√(2/τ)/√(2κ) P], so its covariance solves A′V′ + V′A′ᵀ = −B D Bᵀ (Eq. (11)).
    """
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    tau = _check_positive("tau", tau)
    rows = list(_optical_rows(mode))
    if not _is_stable(A):
        return np.full((4, 4), np.nan)
    P = np.eye(6)[rows]
    A_aug = np.zeros((8, 8))
    A_aug[:6, :6] = A
    A_aug[6:, :6] = math.sqrt(2.0 / tau) * math.sqrt(2.0 * kappa) * P
    A_aug[6:, 6:] = [[-1.0 / tau, center], [-center, -1.0 / tau]]
    B = np.vstack([np.eye(6), -math.sqrt(2.0 / tau) / math.sqrt(2.0 * kappa) * P])
    scale = max(np.abs(A_aug).max(), 1.0)  # solve in units of the largest rate: same V, better conditioning
    import scipy.linalg  # lazily, as scipy.integrate above

    V = scipy.linalg.solve_continuous_lyapunov(A_aug / scale, -(B @ D @ B.T) / scale)
    idx = [6, 7, *_MECHANICAL_ROWS]
    V = V[np.ix_(idx, idx)]
    return 0.5 * (V + V.T)


def filtered_logneg(A, D, kappa: float, tau: float, center: float, mode: str = "U",
                    rtol: float = DEFAULT_RTOL) -> float:
    """E_N (Eqs. (12)–(13)) between the filtered output mode b and the mechanics (Genes et al. 2008).

    Covariance from ``filtered_mode_covariance``; NaN where A is unstable (never 0 for "no steady state").
    """
    V = filtered_mode_covariance(A, D, kappa, tau, center, mode, rtol)
    return float(logneg_from_blocks(np.ascontiguousarray(V)))
