"""Gaussian-state measures: logarithmic negativity (Eqs. (12)–(13)), revival factor (Eq. (14)), physicality.

Covariance matrices use V_kl = ⟨u_k u_l + u_l u_k⟩/2 in (x, p) pairs per mode, vacuum variance 1/2.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sde_com.errors import UserError


def pair_rows(i: int, j: int, n_modes: int) -> list[int]:
    """Rows of the 4×4 block V′ of modes i and j (0-based; negative counts from the last) of a 2N×2N covariance
    in (x, p) pairs; UserError naming a bad index."""
    picked = []
    for name, k in (("i", i), ("j", j)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -n_modes <= k < n_modes:
            raise UserError(f"mode {name} must be a mode index in 0..{n_modes - 1} (or from the end, -1 the last), "
                            f"got {k!r}")
        picked.append(int(k) % n_modes)
    if picked[0] == picked[1]:
        raise UserError("a pair needs two different modes")
    a, b = picked
    return [2 * a, 2 * a + 1, 2 * b, 2 * b + 1]


def _covariance(V: np.ndarray) -> np.ndarray:
    V = np.asarray(V, dtype=float)
    if V.ndim != 2 or V.shape[0] != V.shape[1] or V.shape[0] % 2 or V.shape[0] < 4:
        raise UserError(f"V must be a 2N×2N covariance with N ≥ 2 modes, got shape {V.shape}")
    return V


def reduced_covariance(V: np.ndarray, i: int = 0, j: int = -1) -> np.ndarray:
    """V′ of Eq. (13): the 4×4 covariance of modes i and j (mode indices; default the first and the last, the
    spinning resonator's driven mode and mechanics) after tracing out the others."""
    V = _covariance(V)
    rows = pair_rows(i, j, V.shape[0] // 2)
    return V[np.ix_(rows, rows)]


@njit(cache=True)
def _det4(v):
    """Determinant of a 4×4 matrix by Laplace expansion in 2×2 minors (no LAPACK call, no allocation)."""
    s0 = v[0, 0] * v[1, 1] - v[1, 0] * v[0, 1]
    s1 = v[0, 0] * v[1, 2] - v[1, 0] * v[0, 2]
    s2 = v[0, 0] * v[1, 3] - v[1, 0] * v[0, 3]
    s3 = v[0, 1] * v[1, 2] - v[1, 1] * v[0, 2]
    s4 = v[0, 1] * v[1, 3] - v[1, 1] * v[0, 3]
    s5 = v[0, 2] * v[1, 3] - v[1, 2] * v[0, 3]
    c5 = v[2, 2] * v[3, 3] - v[3, 2] * v[2, 3]
    c4 = v[2, 1] * v[3, 3] - v[3, 1] * v[2, 3]
    c3 = v[2, 1] * v[3, 2] - v[3, 1] * v[2, 2]
    c2 = v[2, 0] * v[3, 3] - v[3, 0] * v[2, 3]
    c1 = v[2, 0] * v[3, 2] - v[3, 0] * v[2, 2]
    c0 = v[2, 0] * v[3, 1] - v[3, 0] * v[2, 1]
    return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0


@njit(cache=True)
def logneg_from_blocks(v):
    """Logarithmic negativity E_N = max(0, −ln 2ν⁻) of a 4×4 two-mode covariance, Eqs. (12)–(13).

    Σ = det𝒜 + detℬ − 2 det𝒞 and ν⁻ = 2^(−1/2)[Σ − (Σ² − 4 det V′)^(1/2)]^(1/2), natural log.
    NaN for a non-finite covariance.
    """
    det_a = v[0, 0] * v[1, 1] - v[0, 1] * v[1, 0]  # the 2×2 determinants
    det_b = v[2, 2] * v[3, 3] - v[2, 3] * v[3, 2]
    det_c = v[0, 2] * v[1, 3] - v[0, 3] * v[1, 2]
    sigma = det_a + det_b - 2.0 * det_c
    det_v = _det4(v)
    if not (math.isfinite(sigma) and math.isfinite(det_v)):  # math, not np: no ufunc to type
        return np.nan  # no state (overflow, NaN): never report it as unentangled
    disc = sigma * sigma - 4.0 * det_v
    if disc < 0.0:  # rounding at a symmetric point: ν⁻ = ν⁺
        disc = 0.0
    inner = sigma - math.sqrt(disc)
    if inner < 0.0:
        inner = 0.0
    nu_minus = math.sqrt(inner / 2.0)
    if nu_minus <= 0.0:
        return math.inf
    return max(0.0, -math.log(2.0 * nu_minus))


@njit(cache=True, nogil=True)
def logneg_rows_packed(P, d, rows):
    """E_N (Eqs. (12)–(13)) of the two-mode block ``rows`` (4 indices) of each covariance, given packed
    (n, d (d + 1) / 2: its upper triangle, row-major): ``logneg_from_blocks`` on each block, so every value
    equals the one-matrix functions' bitwise."""
    out = np.empty(P.shape[0])
    v4 = np.empty((4, 4))
    for k in range(P.shape[0]):
        for r in range(4):
            for c in range(4):
                a, b = min(rows[r], rows[c]), max(rows[r], rows[c])
                v4[r, c] = P[k, a * d - a * (a - 1) // 2 + b - a]
        out[k] = logneg_from_blocks(v4)
    return out


def logneg(V: np.ndarray, i: int = 0, j: int = -1) -> float:
    """E_N (Eqs. (12)–(13)) of modes i and j (0-based mode indices, negative from the end) of a 2N×2N covariance
    in (x, p) pairs, N ≥ 2; default: the first and the last mode (the spinning resonator's driven mode U and
    its mechanics)."""
    return float(logneg_from_blocks(np.ascontiguousarray(reduced_covariance(V, i, j))))


def symplectic_form(n_modes: int) -> np.ndarray:
    """Ω_s = ⊕ [[0, 1], [−1, 0]] for n_modes modes in (x, p) pair order."""
    return np.kron(np.eye(n_modes), np.array([[0.0, 1.0], [-1.0, 0.0]]))


def logneg_symplectic(v4: np.ndarray) -> float:
    """E_N of a 4×4 two-mode covariance from the symplectic spectrum of its partial transpose.

    Independent of Eq. (13): ν⁻ is the smallest |eigenvalue| of iΩ_s P V′ P, P = diag(1, 1, 1, −1)
    (docs/physics.md, "Entanglement").
    """
    P = np.diag([1.0, 1.0, 1.0, -1.0])
    nu = np.abs(np.linalg.eigvals(1j * symplectic_form(2) @ P @ v4 @ P))
    return max(0.0, -math.log(2.0 * float(nu.min())))


def is_physical(V: np.ndarray, tol: float = 1e-9) -> bool:
    """Robertson–Schrödinger uncertainty relation V + (i/2)Ω_s ≥ 0 (smallest eigenvalue ≥ −tol·‖V‖)."""
    V = np.asarray(V)
    H = V + 0.5j * symplectic_form(V.shape[0] // 2)
    return bool(np.linalg.eigvalsh(H).min() >= -tol * max(1.0, np.linalg.norm(V)))


def revival_factor(max_logneg: np.ndarray | float, max_logneg_ideal: np.ndarray | float):
    """Revival factor χ = max_Δc E_N(Ω, J) / max_Δc E_N(Ω = 0, J = 0), Eq. (14)."""
    return np.asarray(max_logneg) / np.asarray(max_logneg_ideal)


LINEARIZATION_TOLERANCE = 0.01  # ⟨δa†δa⟩ / |α|² above which the linearization is doubtful (docs/physics.md)


def fluctuation_numbers(V, modes: int) -> np.ndarray:
    """⟨δa†δa⟩ = (V_xx + V_pp − 1) / 2 of the first ``modes`` modes of V (..., 2N, 2N) in (x, p) pairs (vacuum
    variance 1/2 per quadrature: 0 for vacuum) → (..., modes)."""
    V = np.asarray(V, dtype=float)
    k = np.arange(modes)
    return 0.5 * (V[..., 2 * k, 2 * k] + V[..., 2 * k + 1, 2 * k + 1] - 1.0)


def linearization_ratio(n_fluct, photons) -> np.ndarray:
    """⟨δa†δa⟩ / |α|² of each optical mode: the size of what the linearization drops. The linearized equations
    (Eq. (6)) keep the radiation-pressure terms linear in the fluctuations, G₀(α* δa + α δa†) q, and drop
    G₀ δa†δa q, whose relative size is the fluctuation number ⟨δa†δa⟩ (``fluctuation_numbers``) against the
    mean-field photon number |α|².

    n_fluct, photons (..., K): ⟨δa†δa⟩ and |α|² of the optical modes (the mechanics enters linearly, so its
    thermal fluctuations do not count) → (..., K). A mode with no mean field and vacuum fluctuations gives 0;
    one with fluctuations and no mean field, inf."""
    photons = np.asarray(photons, dtype=float)
    n_fluct = np.asarray(n_fluct, dtype=float)
    n_fluct = np.where(np.abs(n_fluct) < 1e-12, 0.0, n_fluct)  # vacuum within rounding
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_fluct == 0.0, 0.0, n_fluct / photons)


# Gaussian measures that experiments report, beside E_N ------------------------------------------------------


def occupations(V) -> np.ndarray:
    """⟨δa†δa⟩ = (V_xx + V_pp − 1)/2 of every mode of V (..., 2N, 2N) → (..., N): 0 for vacuum."""
    V = np.asarray(V, dtype=float)
    return fluctuation_numbers(V, V.shape[-1] // 2)


def purity(V) -> np.ndarray:
    """Tr ρ² = 1/(2^N √det V) of the whole Gaussian state (vacuum variance 1/2: 1 for a pure state)."""
    V = np.asarray(V, dtype=float)
    n = V.shape[-1] // 2
    sign, logdet = np.linalg.slogdet(V)
    return np.where(sign > 0, np.exp(-n * math.log(2.0) - 0.5 * logdet), np.nan)


def squeezing_db(V) -> np.ndarray:
    """Each mode's smallest quadrature variance, in dB relative to the vacuum's 1/2: 10 log₁₀(λ_min/(1/2)) of
    its 2 × 2 block (negative: squeezed below the vacuum) → (..., N)."""
    V = np.asarray(V, dtype=float)
    n = V.shape[-1] // 2
    blocks = np.stack([V[..., 2 * k:2 * k + 2, 2 * k:2 * k + 2] for k in range(n)], axis=-3)
    return 10.0 * np.log10(np.linalg.eigvalsh(blocks)[..., 0] / 0.5)
