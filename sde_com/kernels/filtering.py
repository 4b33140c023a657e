"""Numba kernel of conditional trajectories: the true state, its detectors' record and the Kalman filter's
estimate, step by step (``physics.measurement.record_step`` and ``filter_gains``: Eqs. (M5)–(M6)). Plain
array functions, no validation."""

import numpy as np
from numba import njit, prange

from sde_com.random.normals import INITIAL_STREAM, sample_gaussian, standard_normals


@njit(cache=True)
def _save(u, x, s, err_sum, err_sq):
    """Add the estimation error's e eᵀ and (e eᵀ)² (e = u − x̂) at saved time s."""
    d = u.shape[0]
    for r in range(d):
        e_r = u[r] - x[r]
        for c in range(d):
            p = e_r * (u[c] - x[c])
            err_sum[s, r, c] += p
            err_sq[s, r, c] += p * p


@njit(cache=True)
def _noise(L, xi, base, z):
    """z = L ξ of the step's normals ξ = xi[base:base + len(z)], summed in a fixed order (no BLAS: the same bits
    on any CPU)."""
    for r in range(z.shape[0]):
        v = 0.0
        for c in range(z.shape[0]):
            v += L[r, c] * xi[base + c]
        z[r] = v


@njit(cache=True)
def _record(H, u, x, z, nu, acc):
    """The step's record ΔY = H u + e (e: the last m entries of the joint noise z), added to acc; its
    innovation ν = ΔY − H x̂ into nu."""
    d, m = u.shape[0], H.shape[0]
    for j in range(m):
        y = z[d + j]
        hx = 0.0
        for c in range(d):
            y += H[j, c] * u[c]
            hx += H[j, c] * x[c]
        acc[j] += y
        nu[j] = y - hx


@njit(cache=True)
def _whitened(Wn, nu, prev, innovation, first_step):
    """Σ ν̃, Σ ν̃², Σ ν̃_n ν̃_{n−1} of the whitened innovation ν̃ = W_n ν."""
    m = nu.shape[0]
    for j in range(m):
        w = 0.0
        for k in range(m):
            w += Wn[j, k] * nu[k]
        innovation[j, 0] += w
        innovation[j, 1] += w * w
        if not first_step:
            innovation[j, 2] += w * prev[j]
        prev[j] = w


@njit(cache=True)
def _advance(Phi, Kn, x, u, z, nu, x_new, u_new):
    """x_new = Φ x̂ + K_n ν, u_new = Φ u + w: the estimate and the state one step on (w: the first d entries of
    z), into buffers (no allocation per step)."""
    d, m = Phi.shape[0], nu.shape[0]
    for r in range(d):
        a, b = 0.0, z[r]
        for c in range(d):
            a += Phi[r, c] * x[c]
            b += Phi[r, c] * u[c]
        for j in range(m):
            a += Kn[r, j] * nu[j]
        x_new[r], u_new[r] = a, b


CHUNKS = 16  # trajectories are split into this many chunks, run in parallel and summed in order: the same
# sums (bitwise) whatever the number of threads


@njit(cache=True)
def _trajectories(seed, first, lo, hi, u0, Phi, H, L, K, W, save_stride, n_traced, err_sum, err_sq, innovation,
                  trace, estimate, record):
    """Trajectories first + lo .. first + hi − 1 of ``conditional_block``, one after another."""
    d, m = Phi.shape[0], H.shape[0]
    n_steps = K.shape[0]
    last = err_sum.shape[0] - 1
    for i in range(lo, hi):
        xi = standard_normals(seed, first + i, n_steps * (d + m))
        u, x, u_next, x_next = u0[i].copy(), np.zeros(d), np.empty(d), np.empty(d)
        prev, acc, nu, z = np.zeros(m), np.zeros(m), np.zeros(m), np.empty(d + m)
        for n in range(n_steps + 1):
            if n % save_stride == 0 or n == n_steps:
                s = n // save_stride if n % save_stride == 0 else last
                _save(u, x, s, err_sum, err_sq)
                if i < n_traced:
                    trace[i, s], estimate[i, s] = u, x
                    if s > 0:
                        record[i, s - 1], acc[:] = acc, 0.0
            if n == n_steps:
                break
            _noise(L, xi, n * (d + m), z)
            _record(H, u, x, z, nu, acc)
            _whitened(W[n], nu, prev, innovation, n == 0)
            _advance(Phi, K[n], x, u, z, nu, x_next, u_next)
            x, x_next, u, u_next = x_next, x, u_next, u


@njit(cache=True, parallel=True)
def conditional_block(seed, first, n_traj, Phi, H, L, K, W, V0_factor, save_stride, n_traced,
                      err_sum, err_sq, innovation, trace, estimate, record):
    """Trajectories first .. first + n_traj − 1: u₀ = V0_factor z (initial stream), x̂₀ = 0; each step draws
    the joint noise L ξ (ξ: the step's d + m normals of the stepping stream), records ΔY = H u + e, updates
    x̂ ← Φ x̂ + K_n (ΔY − H x̂) and u ← Φ u + w. Adds, at every save_stride-th step (and the last), the
    estimation error's e eᵀ to err_sum and (e eᵀ)² to err_sq (n_snap, d, d); the whitened innovations
    ν̃ = W_n ν to innovation (m, 3): Σ ν̃, Σ ν̃², Σ ν̃_n ν̃_{n−1}. The first n_traced trajectories write u and x̂
    at the saved steps (trace, estimate) and ΔY summed over each save interval (record: n_snap − 1 rows).
    In CHUNKS chunks of trajectories in parallel, their sums added in chunk order."""
    chunks = min(CHUNKS, n_traj)
    u0 = sample_gaussian(V0_factor, seed, first, n_traj, INITIAL_STREAM)
    n_snap, d, m = err_sum.shape[0], err_sum.shape[1], innovation.shape[0]
    sums = np.zeros((chunks, n_snap, d, d))
    squares = np.zeros((chunks, n_snap, d, d))
    innovations = np.zeros((chunks, m, 3))
    for c in prange(chunks):
        _trajectories(seed, first, c * n_traj // chunks, (c + 1) * n_traj // chunks, u0, Phi, H, L, K, W,
                      save_stride, n_traced, sums[c], squares[c], innovations[c], trace, estimate, record)
    for c in range(chunks):
        err_sum += sums[c]
        err_sq += squares[c]
        innovation += innovations[c]


@njit(cache=True)
def filter_record(Phi, H, K, records):
    """The filter x̂ ← Φ x̂ + K_n (ΔY_n − H x̂) from x̂ = 0 over records (n_traj, n_steps, m) → estimates
    (n_traj, n_steps + 1, d) and innovations ΔY_n − H x̂_n (n_traj, n_steps, m)."""
    n_traj, n_steps, m = records.shape
    d = Phi.shape[0]
    est = np.zeros((n_traj, n_steps + 1, d))
    innov = np.empty((n_traj, n_steps, m))
    for i in range(n_traj):
        x = np.zeros(d)
        for n in range(n_steps):
            nu = np.empty(m)
            for j in range(m):
                hx = 0.0
                for c in range(d):
                    hx += H[j, c] * x[c]
                nu[j] = records[i, n, j] - hx
                innov[i, n, j] = nu[j]
            x_new = np.empty(d)
            for r in range(d):
                a = 0.0
                for c in range(d):
                    a += Phi[r, c] * x[c]
                for j in range(m):
                    a += K[n, r, j] * nu[j]
                x_new[r] = a
            x = x_new
            for r in range(d):
                est[i, n + 1, r] = x[r]
    return est, innov
