"""Numba kernel of conditional trajectories: the true state, its detectors' record and the Kalman filter's
estimate, step by step (``physics.measurement.record_step`` and ``filter_gains``: Eqs. (M5)–(M6)). Plain
array functions, no validation."""

import numpy as np
from numba import njit

from sde_com.random.normals import STEP_STREAM_ID, continue_normals
from sde_com.random.philox import xoshiro_seed

LANES = 32  # trajectories stepped in lockstep, innermost in every loop (SIMD across trajectories; measured with
# `sde-com bench --only conditional`: 8 lanes 2.4x the exact stepper's cost per trajectory-step, 16 lanes
# 1.8-2.1x, 32 lanes 1.6-2.1x, median 1.65x)
BLOCK_STEPS = 512  # steps whose normals are drawn at a time (the stream continues: the same normals as drawn whole)


@njit(cache=True)
def _stream(seed, trajectory):
    """The stepping stream's state of one trajectory: xoshiro256++ words s0..s3 (``random.philox``)."""
    s0, s1, s2, s3 = xoshiro_seed(seed, trajectory, STEP_STREAM_ID)
    return np.array([s0, s1, s2, s3], dtype=np.uint64)


@njit(cache=True, nogil=True)
def conditional_chunk(seed, first, lo, hi, u0, Phi, H, L, K, W, n_steps, save_stride, n_traced, err_sum, err_sq,
                      innovation, trace, estimate, record):
    """Trajectories first + lo .. first + hi − 1 (their initial states u0[lo:hi], drawn from the initial stream),
    LANES at a time in lockstep: x̂₀ = 0; each step draws the joint noise L ξ (ξ: the step's d + m normals of the
    stepping stream), records ΔY = H u + e, updates x̂ ← Φ x̂ + K_n (ΔY − H x̂) and u ← Φ u + w (the gains of
    step n: K[min(n, len(K) − 1)], ``filter_gains``). Adds, at every save_stride-th step (and the last), the
    estimation error's e eᵀ to err_sum and (e eᵀ)² to err_sq (n_snap, d, d); the whitened innovations
    ν̃ = W_n ν to innovation (m, 3): Σ ν̃, Σ ν̃², Σ ν̃_n ν̃_{n−1}. Trajectories below n_traced (counted from
    first) write u and x̂ at the saved steps (trace, estimate) and ΔY summed over each save interval (record).
    Releases the GIL: chunks run on threads (``simulation.conditional.run_conditional_unit``)."""
    for g in range(lo, hi, LANES):
        _lanes(seed, first, g, min(g + LANES, hi) - g, u0, Phi, H, L, K, W, n_steps, save_stride, n_traced,
               err_sum, err_sq, innovation, trace, estimate, record)


@njit(cache=True)
def _lanes(seed, first, g, nb, u0, Phi, H, L, K, W, n_steps, save_stride, n_traced, err_sum, err_sq, innovation,
           trace, estimate, record):
    """Trajectories first + g .. first + g + nb − 1 stepped together: every array is (quantity, lane)."""
    d, m = Phi.shape[0], H.shape[0]
    settled = K.shape[0] - 1  # the gains of later steps are the last ones (``filter_gains``)
    k = d + m
    xi, column = np.empty((BLOCK_STEPS * k, nb)), np.empty(BLOCK_STEPS * k)
    streams = np.empty((nb, 4), dtype=np.uint64)
    u, x, un, xn = np.empty((d, nb)), np.zeros((d, nb)), np.empty((d, nb)), np.empty((d, nb))
    for b in range(nb):
        streams[b] = _stream(seed, first + g + b)
        u[:, b] = u0[g + b]
    z, nu, acc, prev = np.empty((k, nb)), np.empty((m, nb)), np.zeros((m, nb)), np.zeros((m, nb))
    for n in range(n_steps + 1):
        if n % save_stride == 0 or n == n_steps:
            s = n // save_stride if n % save_stride == 0 else err_sum.shape[0] - 1
            _save_lanes(u, x, s, g, n_traced, acc, err_sum, err_sq, trace, estimate, record)
        if n == n_steps:
            break
        if n % BLOCK_STEPS == 0:  # the next block's normals, lane by lane
            for b in range(nb):
                continue_normals(streams[b], seed, first + g + b, STEP_STREAM_ID, n * k, column)
                xi[:, b] = column
        _noise_lanes(L, xi, (n % BLOCK_STEPS) * k, z)
        _record_lanes(H, u, x, z, nu, acc)
        _whiten_lanes(W[min(n, settled)], nu, prev, innovation, n > 0)
        _advance_lanes(Phi, K[min(n, settled)], x, u, z, nu, xn, un)
        x, xn, u, un = xn, x, un, u


@njit(cache=True)
def _save_lanes(u, x, s, g, n_traced, acc, err_sum, err_sq, trace, estimate, record):
    """At saved time s: every lane's e eᵀ and (e eᵀ)² (e = u − x̂) added; the traced lanes' u, x̂ and the record
    summed since the last save written; the record's running sums reset."""
    d, nb = u.shape
    for r in range(d):
        for c in range(d):
            t1, t2 = 0.0, 0.0
            for b in range(nb):
                p = (u[r, b] - x[r, b]) * (u[c, b] - x[c, b])
                t1 += p
                t2 += p * p
            err_sum[s, r, c] += t1
            err_sq[s, r, c] += t2
    for b in range(min(nb, n_traced - g)):
        trace[g + b, s], estimate[g + b, s] = u[:, b], x[:, b]
        if s > 0:
            record[g + b, s - 1] = acc[:, b]
    acc[:] = 0.0


@njit(cache=True)
def _noise_lanes(L, xi, base, z):
    """z = L ξ of the step's normals, summed in a fixed order (no BLAS: the same bits on any CPU)."""
    k, nb = z.shape
    z[:] = 0.0
    for r in range(k):
        for c in range(k):
            lc = L[r, c]
            for b in range(nb):
                z[r, b] += lc * xi[base + c, b]


@njit(cache=True)
def _record_lanes(H, u, x, z, nu, acc):
    """The step's record ΔY = H u + e (e: the last m rows of z), added to acc; its innovation ν = ΔY − H x̂."""
    m, d = H.shape
    nb = u.shape[1]
    for j in range(m):
        for b in range(nb):
            nu[j, b] = z[d + j, b]
            acc[j, b] += z[d + j, b]
        for c in range(d):
            hc = H[j, c]
            for b in range(nb):
                acc[j, b] += hc * u[c, b]
                nu[j, b] += hc * (u[c, b] - x[c, b])


@njit(cache=True)
def _whiten_lanes(Wn, nu, prev, innovation, lagged):
    """Σ ν̃, Σ ν̃², Σ ν̃_n ν̃_{n−1} (``lagged``: after the first step) of the whitened innovations ν̃ = W_n ν."""
    m, nb = nu.shape
    for j in range(m):
        for b in range(nb):
            w = 0.0
            for q in range(m):
                w += Wn[j, q] * nu[q, b]
            innovation[j, 0] += w
            innovation[j, 1] += w * w
            if lagged:
                innovation[j, 2] += w * prev[j, b]
            prev[j, b] = w


@njit(cache=True)
def _advance_lanes(Phi, Kn, x, u, z, nu, xn, un):
    """xn = Φ x̂ + K_n ν, un = Φ u + w (w: the first d rows of z)."""
    d, nb = x.shape
    m = nu.shape[0]
    for r in range(d):
        for b in range(nb):
            xn[r, b] = 0.0
            un[r, b] = z[r, b]
        for c in range(d):
            pc = Phi[r, c]
            for b in range(nb):
                xn[r, b] += pc * x[c, b]
                un[r, b] += pc * u[c, b]
        for j in range(m):
            kj = Kn[r, j]
            for b in range(nb):
                xn[r, b] += kj * nu[j, b]


@njit(cache=True)
def filter_record(Phi, H, K, records):
    """The filter x̂ ← Φ x̂ + K_n (ΔY_n − H x̂) from x̂ = 0 over records (n_traj, n_steps, m) → estimates
    (n_traj, n_steps + 1, d) and innovations ΔY_n − H x̂_n (n_traj, n_steps, m)."""
    n_traj, n_steps, m = records.shape
    d = Phi.shape[0]
    settled = K.shape[0] - 1  # the gains of later steps are the last ones (``filter_gains``)
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
                    a += K[min(n, settled), r, j] * nu[j]
                x_new[r] = a
            x = x_new
            for r in range(d):
                est[i, n + 1, r] = x[r]
    return est, innov
