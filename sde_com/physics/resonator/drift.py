"""Linearized fluctuation dynamics of the spinning resonator: drift A (Eq. (6)) and diffusion D (Eq. (10)).

Quadrature order u = (δX_U, δY_U, δX_V, δY_V, δq, δp) (``QUADRATURES``); vacuum variance 1/2 on each
optical quadrature; rates in rad/s. ``fill_drift_matrix`` is the njit form the fast chain calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

QUADRATURES: tuple[str, ...] = ("xU", "yU", "xV", "yV", "q", "p")


@njit(cache=True)
def fill_drift_matrix(out, kappa, delta_u_eff, delta_v_eff, J, G_u, G_v, omega_m, gamma_m):
    """Write the drift matrix A of Eq. (6) (corrected in docs/physics.md) into the 6×6 array ``out``.

    G_j = √2 G₀ α_j is the effective coupling of mode j (complex), Δ̃_j the effective detunings.
    Any consistent unit of rate works (rad/s, or everything divided by ω_m).
    """
    out[:, :] = 0.0
    out[0, 0] = -kappa
    out[0, 1] = delta_u_eff
    out[0, 3] = J
    out[0, 4] = -G_u.imag
    out[1, 0] = -delta_u_eff
    out[1, 1] = -kappa
    out[1, 2] = -J
    out[1, 4] = G_u.real
    out[2, 1] = J
    out[2, 2] = -kappa
    out[2, 3] = delta_v_eff
    out[2, 4] = -G_v.imag
    out[3, 0] = -J
    out[3, 2] = -delta_v_eff
    out[3, 3] = -kappa
    out[3, 4] = G_v.real
    out[4, 5] = omega_m
    out[5, 0] = G_u.real
    out[5, 1] = G_u.imag
    out[5, 2] = G_v.real
    out[5, 3] = G_v.imag
    out[5, 4] = -omega_m
    out[5, 5] = -gamma_m


def drift_matrix(kappa, delta_u_eff, delta_v_eff, J, G_u, G_v, omega_m, gamma_m) -> np.ndarray:
    """Drift matrix A of Eq. (6) as a new 6×6 array (see ``fill_drift_matrix``)."""
    out = np.empty((6, 6))
    fill_drift_matrix(out, float(kappa), float(delta_u_eff), float(delta_v_eff), float(J), complex(G_u),
                      complex(G_v), float(omega_m), float(gamma_m))
    return out


def diffusion_matrix(kappa: float, gamma_m: float, n_thermal: float) -> np.ndarray:
    """Diffusion matrix D = diag(κ, κ, κ, κ, 0, γ_m(2n_m + 1)) under Eq. (10), vacuum variance 1/2."""
    return np.diag([kappa, kappa, kappa, kappa, 0.0, gamma_m * (2.0 * n_thermal + 1.0)])
