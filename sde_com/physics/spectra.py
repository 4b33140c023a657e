"""Stationary spectra of the linear model and entanglement of a filtered output mode (issue 5, items 3–4).

Conventions (docs/physics.md; rates and frequencies in rad/s, vacuum variance 1/2):

- Linearized model u̇ = A u + v of any 2N-quadrature system ((x, p) per mode), v white noise with symmetrized
  correlations D δ(t − t′). For the spinning resonator u = (δX_U, δY_U, δX_V, δY_V, δq, δp) and
  v = (√(2κ) X_in^U, √(2κ) Y_in^U, √(2κ) X_in^V, √(2κ) Y_in^V, 0, ξ).
- An output port of mode k at decay rate κ into it: a_out = √(2κ) a_k − a_in, the port's vacuum input a_in
  entering v as √(2κ) a_in (``port_noise``: the joint covariance of v and the input). Modes are named 'U'/'V'
  for the resonator, or by their index k (rows 2k, 2k + 1) for any system.
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

OPTICAL_MODES: tuple[str, ...] = ("U", "V")  # the spinning resonator's output modes, by name (6-D layout)
_OPTICAL_ROWS = {"U": (0, 1), "V": (2, 3)}

# Default relative tolerance of the frequency integrals (adaptive Gauss–Kronrod, quad_vec).
DEFAULT_RTOL = 1e-9
# Of max|D|: how far D may fall short of the port's vacuum input noise (rounding of a D computed in float64).
PORT_NOISE_TOLERANCE = 1e-12


# Validation --------------------------------------------------------------------------------------


def _check_system(A, D) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=float)
    D = np.asarray(D, dtype=float)
    n = A.shape[0] if A.ndim == 2 else -1
    if A.ndim != 2 or n % 2 or A.shape != (n, n) or D.shape != (n, n) or n == 0:
        raise UserError(f"A and D must be 2N×2N matrices of the same size ((x, p) pairs per mode), got {A.shape} "
                        f"and {D.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(D))):
        raise UserError("A and D must be finite")
    return A, D


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0.0 \
            or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number > 0 (rad/s or s), got {value!r}")
    return float(value)


def mode_rows(dimension: int, mode: str | int) -> tuple[int, int]:
    """The rows (x, p) of ``mode`` in a state of ``dimension`` = 2N quadratures: the resonator's optical modes by
    name ('U', 'V'; 6-D layout), or any system's mode by its index k (rows 2k, 2k + 1)."""
    if isinstance(mode, str):
        if mode not in _OPTICAL_ROWS or dimension != 6:
            raise UserError(f"mode must be one of {OPTICAL_MODES} (the spinning resonator's optical modes) or a "
                            f"mode index 0..{dimension // 2 - 1}, got {mode!r}")
        return _OPTICAL_ROWS[mode]
    if isinstance(mode, bool) or not isinstance(mode, (int, np.integer)) or not 0 <= mode < dimension // 2:
        raise UserError(f"mode must be a mode index 0..{dimension // 2 - 1} (or 'U'/'V' for the spinning "
                        f"resonator), got {mode!r}")
    return 2 * int(mode), 2 * int(mode) + 1


def _partner_rows(dimension: int, partner: int | None) -> tuple[int, int]:
    """Rows of the mode the filtered output is paired with: the last mode unless given (the resonator's
    mechanics)."""
    return mode_rows(dimension, dimension // 2 - 1 if partner is None else partner)


def port_noise(D, kappa: float, mode: str | int = 0) -> np.ndarray:
    """Joint covariance (2N + 2)² of the noise (v, X_in, Y_in): the system's noise v (covariance D) and the vacuum
    input (X_in, Y_in) of the output port of ``mode`` at decay rate κ into it (rad/s).

    The port's input enters the mode's equations as √(2κ) X_in (input–output relation a_out = √(2κ) a − a_in),
    so E[v X_inᵀ] = √(κ/2) on the mode's rows and E[X_in X_inᵀ] = I/2; the rest of v, D − κ P Pᵀ (P: the
    mode's rows), is independent of the port and must be a covariance: UserError naming the mode, κ and the
    shortfall otherwise. For the resonator (D = κ on each optical row) the port carries all of the mode's noise.
    """
    D = np.asarray(D, dtype=float)
    n = D.shape[0]
    rows = list(mode_rows(n, mode))
    kappa = _check_positive("kappa", kappa)
    rest = port_rest(D, kappa, mode)
    scale = max(float(np.abs(D).max()), kappa)
    lowest = float(np.linalg.eigvalsh(0.5 * (rest + rest.T)).min())
    if lowest < -PORT_NOISE_TOLERANCE * scale:
        raise UserError(f"an output port at κ = {kappa:.6g} s-1 on the quadratures {rows} needs its vacuum input "
                        f"noise (κ on each of them) inside D: D − κ P Pᵀ has the eigenvalue {lowest:.6g}; lower the "
                        "port's rate or add the noise to D")
    out = np.zeros((n + 2, n + 2))
    out[:n, :n] = D
    out[rows, n:] = out[n:, rows] = math.sqrt(0.5 * kappa) * np.eye(2)
    out[n:, n:] = 0.5 * np.eye(2)
    return out


def port_rest(D, kappa: float, mode: str | int) -> np.ndarray:
    """D − κ P Pᵀ: the system's noise that is not the port's vacuum input (P: the mode's rows); zero on the
    mode's rows when the port carries all of the mode's noise (the resonator's optical modes)."""
    D = np.asarray(D, dtype=float)
    P = np.eye(D.shape[0])[:, list(mode_rows(D.shape[0], mode))]
    return D - kappa * P @ P.T


def carries_all_noise(D, kappa: float, mode: str | int) -> bool:
    """Whether the port of ``mode`` at κ is all of the mode's noise (``port_rest`` is zero on its rows, to
    PORT_NOISE_TOLERANCE of max|D|): its input is then X_in = v_mode/√(2κ), a function of v alone."""
    rows = list(mode_rows(np.shape(D)[0], mode))
    rest = port_rest(D, kappa, mode)
    return bool(np.abs(rest[rows]).max() <= PORT_NOISE_TOLERANCE * max(float(np.abs(D).max()), kappa))


def _is_stable(A: np.ndarray) -> bool:
    """The one stability decision (``stability.decide_stability``; ω_ref = max |A_kl|, A alone is known)."""
    return decide_stability(A).stable


# Transfer functions ------------------------------------------------------------------------------


def susceptibility(A, omega) -> np.ndarray:
    """χ(ω) = −(A + iω)⁻¹, shape (n_ω, 2N, 2N): u(ω) = χ(ω) v(ω) for f(ω) = ∫ dt e^{iωt} f(t); ω in rad/s."""
    A = np.asarray(A, dtype=float)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    M = A[None, :, :] + 1j * w[:, None, None] * np.eye(A.shape[0])[None, :, :]
    return -np.linalg.inv(M)


def _output_rows(chi: np.ndarray, kappa: float, rows) -> np.ndarray:
    """[√(2κ) χ_rows, −I] (…, 2, 2N + 2): (X_out, Y_out) = it applied to (v, X_in, Y_in)."""
    lead = chi.shape[:-2]
    return np.concatenate([math.sqrt(2.0 * kappa) * chi[..., list(rows), :],
                           np.broadcast_to(-np.eye(2), (*lead, 2, 2))], axis=-1)


def output_transfer(A, kappa: float, omega, mode: str | int = 0) -> np.ndarray:
    """C(ω) = [√(2κ) P χ(ω), −I], shape (n_ω, 2, 2N + 2): (X_out, Y_out)(ω) = C(ω) (v, X_in, Y_in)(ω).

    Input–output relation a_out = √(2κ) a − a_in of the port of ``mode`` (P: its rows) at decay rate κ into it;
    the noise (v, X_in, Y_in) has the joint covariance ``port_noise``.
    """
    A = np.asarray(A, dtype=float)
    rows = mode_rows(A.shape[0], mode)
    return _output_rows(susceptibility(A, omega), _check_positive("kappa", kappa), rows)


def spectral_matrix(A, D, omega) -> np.ndarray:
    """Symmetrized spectral matrix S_uu(ω) = χ(ω) D χ(ω)†, shape (n_ω, 2N, 2N), Hermitian, in 1/(rad/s).

    ∫ dω/2π S_uu(ω) is the Lyapunov covariance V of Eq. (11) for a stable A. NaN where A is unstable (no
    stationary state).
    """
    A, D = _check_system(A, D)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    if not _is_stable(A):
        return np.full((w.size, *A.shape), np.nan + 0j)
    chi = susceptibility(A, w)
    return chi @ D @ np.conj(np.swapaxes(chi, 1, 2))


def _lo_direction(n: int, rows, theta: float) -> np.ndarray:
    e = np.zeros(n)
    e[rows[0]], e[rows[1]] = math.cos(theta), math.sin(theta)
    return e


def output_spectrum(A, D, kappa: float, omega, mode: str | int = 0, theta: float = 0.0) -> np.ndarray:
    """Homodyne spectrum S_θ(ω) of X_θ = cos θ X_out + sin θ Y_out (real, ≥ 0; C(ω) ``port_noise`` C(ω)†).

    Input–output relation a_out = √(2κ) a − a_in applied to the port of ``mode`` (the resonator's driven 'U'
    or reflected 'V' mode, or a system's mode index) at decay rate κ into it; θ is the local-oscillator phase
    (θ = 0: amplitude quadrature X, θ = π/2: Y). Shot noise is 1/2. ω in rad/s; NaN where A is unstable.
    Evaluated as shot noise + ``output_excess_spectrum``.
    """
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    port_noise(D, kappa, mode)  # the port's input noise must be inside D
    e = _lo_direction(A.shape[0], mode_rows(A.shape[0], mode), theta)
    return (kappa * e) @ e / (2.0 * kappa) + output_excess_spectrum(A, D, kappa, omega, mode, theta)


def output_excess_spectrum(A, D, kappa: float, omega, mode: str | int = 0, theta: float = 0.0) -> np.ndarray:
    """S_θ(ω) − 1/2 = 2κ e_θᵀ S_uu(ω) e_θ − 2κ Re e_θᵀ χ(ω) e_θ: the output noise above shot noise.

    From the input–output relation X_θ,out = √(2κ) e_θᵀu − e_θᵀX_in (e_θ: the LO direction of the mode) and
    E[v X_inᵀ] = √(κ/2) on the mode's rows (``port_noise``). Written without the subtraction S_θ − 1/2, so it
    keeps full relative precision where it decays as 1/ω²; ∫ dω/2π of it is 2κ(V_θθ − 1/2) (χ(t = 0) = I/2).
    """
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    e = _lo_direction(A.shape[0], mode_rows(A.shape[0], mode), theta)
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    if not _is_stable(A):
        return np.full(w.size, np.nan)
    chi_e = e @ susceptibility(A, w)  # (n_ω, 2N): e_θᵀ χ(ω)
    diag = np.einsum("wk,kl,wl->w", chi_e, D, np.conj(chi_e)).real
    return 2.0 * kappa * diag - 2.0 * (chi_e @ (kappa * e)).real


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


def _filtered_transfer(A, kappa, omega, tau, center, mode, partner, pure: bool) -> np.ndarray:
    """T(ω), shape (4, 2N + 2): (X_b, Y_b, x, p)(ω) = T(ω) (v, X_in, Y_in)(ω) for the filtered output mode b of
    ``mode`` and the quadratures (x, p) of ``partner`` (a mode index; the last mode unless given). With
    a_out = (X_out + iY_out)/√2 and g = g_r + i g_i (real functions of time), X_b = g_r∗X_out − g_i∗Y_out and
    Y_b = g_i∗X_out + g_r∗Y_out; in frequency g_r(ω) = [g(ω) + g(−ω)*]/2, g_i(ω) = [g(ω) − g(−ω)*]/(2i).
    ``pure`` (the port carries all of its mode's noise, ``carries_all_noise``): on v alone, (4, 2N), with
    X_in = v_mode/√(2κ) (the spinning resonator's arithmetic, bit for bit)."""
    A = np.asarray(A, dtype=float)
    n = A.shape[0]
    w = np.array([omega], dtype=float)
    g_plus = filter_response(w, tau, center)[0]
    g_minus = np.conj(filter_response(-w, tau, center)[0])
    g_r = 0.5 * (g_plus + g_minus)
    g_i = (g_plus - g_minus) / 2j
    M = np.array([[g_r, -g_i], [g_i, g_r]])
    chi = susceptibility(A, w)[0]
    rows = list(mode_rows(n, mode))
    if pure:
        P = np.eye(n)[rows]
        C = math.sqrt(2.0 * kappa) * chi[rows, :] - P / math.sqrt(2.0 * kappa)
        return np.vstack([M @ C, chi[list(_partner_rows(n, partner)), :]])
    C = _output_rows(chi, kappa, rows)
    partner_rows = np.zeros((2, n + 2), dtype=complex)
    partner_rows[:, :n] = chi[list(_partner_rows(n, partner)), :]
    return np.vstack([M @ C, partner_rows])


def _check_filter(A, D, kappa, tau, center, mode, partner):
    A, D = _check_system(A, D)
    kappa = _check_positive("kappa", kappa)
    tau = _check_positive("tau", tau)
    if isinstance(center, bool) or not isinstance(center, (int, float, np.floating)) or not math.isfinite(center):
        raise UserError(f"center must be a finite rate Ω_f in rad/s, got {center!r}")
    if set(mode_rows(A.shape[0], mode)) & set(_partner_rows(A.shape[0], partner)):
        raise UserError(f"the filtered output of mode {mode!r} cannot be paired with itself (partner {partner!r})")
    N = port_noise(D, kappa, mode)  # checks that the port fits inside D
    pure = carries_all_noise(D, kappa, mode)
    return A, (D if pure else N), kappa, tau, float(center), pure


def filtered_mode_covariance(A, D, kappa: float, tau: float, center: float, mode: str | int = 0,
                             rtol: float = DEFAULT_RTOL, partner: int | None = None) -> np.ndarray:
    """Stationary 4×4 covariance of (X_b, Y_b, x, p): ∫ dω/2π Re[T(ω) N T(ω)†] (Genes et al. 2008), N the joint
    noise covariance ``port_noise``.

    b is the output of ``mode`` (input–output relation a_out = √(2κ) a − a_in, κ the decay rate into the port)
    through the causal filter of ``filter_response`` with inverse bandwidth τ (s) and centre Ω_f = ``center``
    (rad/s, relative to the laser; Ω_f = −ω_m is the Stokes sideband); (x, p) are the quadratures of
    ``partner`` (the last mode unless given: the resonator's mechanics). Vacuum variance 1/2. All NaN where A
    is unstable.
    """
    A, N, kappa, tau, center, pure = _check_filter(A, D, kappa, tau, center, mode, partner)
    if not _is_stable(A):
        return np.full((4, 4), np.nan)

    def integrand(w):
        T = _filtered_transfer(A, kappa, w, tau, center, mode, partner, pure)
        return (T @ N @ np.conj(T.T)).real

    points = _breakpoints(A, [center], [1.0 / tau])
    V, _ = frequency_integral(integrand, center, 1.0 / tau, points, rtol=rtol, atol=rtol)
    return 0.5 * (V + V.T)


def filtered_mode_covariance_lyapunov(A, D, kappa: float, tau: float, center: float, mode: str | int = 0,
                                      partner: int | None = None) -> np.ndarray:
    """The same 4×4 covariance as ``filtered_mode_covariance``, from an augmented Lyapunov equation (reference).

    The filter is the linear ODE ḃ = −(1/τ + iΩ_f) b + √(2/τ) a_out, i.e. Ẋ_b = −X_b/τ + Ω_f Y_b + √(2/τ) X_out,
    Ẏ_b = −Y_b/τ − Ω_f X_b + √(2/τ) Y_out, driven by X_out = √(2κ) x − X_in. The state (u, X_b, Y_b) is linear
    with the noise B (v, X_in, Y_in), B = [[I, 0], [0, −√(2/τ) I]], so its covariance solves
    A′V′ + V′A′ᵀ = −B N Bᵀ (Eq. (11)) with N = ``port_noise``.
    """
    A, N, kappa, tau, center, pure = _check_filter(A, D, kappa, tau, center, mode, partner)
    if not _is_stable(A):
        return np.full((4, 4), np.nan)
    n = A.shape[0]
    P = np.eye(n)[list(mode_rows(n, mode))]
    A_aug = np.zeros((n + 2, n + 2))
    A_aug[:n, :n] = A
    A_aug[n:, :n] = math.sqrt(2.0 / tau) * math.sqrt(2.0 * kappa) * P
    A_aug[n:, n:] = [[-1.0 / tau, center], [-center, -1.0 / tau]]
    if pure:  # the input is v_mode/√(2κ): the noise B v, B = [I; −√(2/τ)/√(2κ) P], on v alone
        B = np.vstack([np.eye(n), -math.sqrt(2.0 / tau) / math.sqrt(2.0 * kappa) * P])
    else:
        B = np.eye(n + 2)
        B[n:, n:] *= -math.sqrt(2.0 / tau)
    scale = max(np.abs(A_aug).max(), 1.0)  # solve in units of the largest rate: same V, better conditioning
    import scipy.linalg  # lazily, as scipy.integrate above

    V = scipy.linalg.solve_continuous_lyapunov(A_aug / scale, -(B @ N @ B.T) / scale)
    idx = [n, n + 1, *_partner_rows(n, partner)]
    V = V[np.ix_(idx, idx)]
    return 0.5 * (V + V.T)


def filtered_logneg(A, D, kappa: float, tau: float, center: float, mode: str | int = 0,
                    rtol: float = DEFAULT_RTOL, partner: int | None = None) -> float:
    """E_N (Eqs. (12)–(13)) between the filtered output mode b of ``mode`` and ``partner`` (the last mode,
    the resonator's mechanics, unless given; Genes et al. 2008).

    Covariance from ``filtered_mode_covariance``; NaN where A is unstable (never 0 for "no steady state").
    """
    V = filtered_mode_covariance(A, D, kappa, tau, center, mode, rtol, partner)
    return float(logneg_from_blocks(np.ascontiguousarray(V)))
