"""The nonlinear kernel: truncated-Wigner Euler–Maruyama for the spinning resonator's Langevin equations."""

import math

import numpy as np
from numba import njit, prange

from sde_com.random.normals import STEP_STREAM_ID, ZERO, fill_normals


@njit(cache=True, parallel=True, nogil=True)
def run_truncated_wigner(rates, initial, reference, seed, first_trajectory, n_steps, dt, burn_in_steps):
    """Euler–Maruyama for the full nonlinear Langevin equations (Eq. (3), corrected in docs/physics.md) with
    the Gaussian noises of the linearized model (truncated Wigner), in units of ω_m.

    rates = (δ_U, δ_V, k, j, g0, e, g, thermal): Δ_j, κ, J, G₀, ε, γ_m over ω_m and thermal = 2n_m + 1.
    State per trajectory (Re α_U, Im α_U, Re α_V, Im α_V, q, p); the radiation-pressure force uses
    |α|² − 1/2 per mode (the Wigner function's symmetric ordering). The noise of step n is normals
    6n .. 6n+5 of the stepping stream, entering as the linear kernel's EM noise does (xU, yU, xV, yV, –, p),
    so the same seed drives the linearized and the nonlinear model alike. Returns the per-trajectory sums
    of u uᵀ over the states after the burn-in, u the fluctuation about ``reference`` in quadrature units.
    """
    n_traj = initial.shape[0]
    d_u, d_v, k, j, g0, e, g, thermal = rates[0], rates[1], rates[2], rates[3], rates[4], rates[5], rates[6], \
        rates[7]
    s_opt = math.sqrt(k * dt / 2.0)
    s_mech = math.sqrt(g * thermal * dt)
    sq2 = math.sqrt(2.0)
    sum_uu = np.zeros((n_traj, 6, 6))
    for i in prange(n_traj):
        xi = np.empty(6 * n_steps)
        fill_normals(seed, first_trajectory + i, ZERO, STEP_STREAM_ID, xi)
        ur, ui, vr, vi, q, p = initial[i, 0], initial[i, 1], initial[i, 2], initial[i, 3], initial[i, 4], \
            initial[i, 5]
        u = np.empty(6)
        for n in range(n_steps):
            b = 6 * n
            # complex arithmetic written out: a' = −(iδ + k) a − i j a_other + i g0 q a (+ e for U)
            dur = k * -ur + d_u * ui + j * vi - g0 * q * ui + e
            dui = -d_u * ur - k * ui - j * vr + g0 * q * ur
            dvr = -k * vr + d_v * vi + j * ui - g0 * q * vi
            dvi = -d_v * vr - k * vi - j * ur + g0 * q * vr
            force = -q - g * p + g0 * (ur * ur + ui * ui + vr * vr + vi * vi - 1.0)
            ur, ui = ur + dt * dur + s_opt * xi[b], ui + dt * dui + s_opt * xi[b + 1]
            vr, vi = vr + dt * dvr + s_opt * xi[b + 2], vi + dt * dvi + s_opt * xi[b + 3]
            q, p = q + dt * p, p + dt * force + s_mech * xi[b + 5]
            if n + 1 > burn_in_steps:
                u[0] = sq2 * (ur - reference[0])
                u[1] = sq2 * (ui - reference[1])
                u[2] = sq2 * (vr - reference[2])
                u[3] = sq2 * (vi - reference[3])
                u[4] = q - reference[4]
                u[5] = p - reference[5]
                for r in range(6):
                    for c in range(6):
                        sum_uu[i, r, c] += u[r] * u[c]
    return sum_uu
