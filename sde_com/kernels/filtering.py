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
def conditional_chunk(seed, first, lo, hi, u0, Phi, H, L, K, W, Fu, Fy, closed, n_steps, save_stride, n_traced,
                      err_sum, err_sq, state_sum, state_sq, innovation, trace, estimate, record):
    """Trajectories first + lo .. first + hi − 1 (their initial states u0[lo:hi], drawn from the initial stream),
    LANES at a time in lockstep: x̂₀ = 0; each step draws the joint noise L ξ (ξ: the step's d + m normals of the
    stepping stream), records ΔY = H u + e, updates x̂ ← Φ x̂ + K_n (ΔY − H x̂) and u ← Φ u + w (the gains of
    step n: K[min(n, len(K) − 1)], ``filter_gains``). With ``closed``, a feedback force u_c = −L x̂ held over the
    step adds F_u x̂ to u and x̂ and F_y x̂ to the record (``physics.feedback.control_step``: F = −G L), and the
    state's u uᵀ and (u uᵀ)² go to state_sum and state_sq. Adds, at every save_stride-th step (and the last), the
    estimation error's e eᵀ to err_sum and (e eᵀ)² to err_sq (n_snap, d, d); the whitened innovations
    ν̃ = W_n ν to innovation (m, 3): Σ ν̃, Σ ν̃², Σ ν̃_n ν̃_{n−1}. Trajectories below n_traced (counted from
    first) write u and x̂ at the saved steps (trace, estimate) and ΔY summed over each save interval (record).
    Releases the GIL: chunks run on threads (``simulation.conditional.run_conditional_unit``)."""
    for g in range(lo, hi, LANES):
        _lanes(seed, first, g, min(g + LANES, hi) - g, u0, Phi, H, L, K, W, Fu, Fy, closed, n_steps, save_stride,
               n_traced, err_sum, err_sq, state_sum, state_sq, innovation, trace, estimate, record)


@njit(cache=True)
def _lanes(seed, first, g, nb, u0, Phi, H, L, K, W, Fu, Fy, closed, n_steps, save_stride, n_traced, err_sum,
           err_sq, state_sum, state_sq, innovation, trace, estimate, record):
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
            if closed:
                _state_lanes(u, s, state_sum, state_sq)
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
        if closed:
            _control_lanes(Fu, Fy, x, xn, un, acc)
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
def _state_lanes(u, s, state_sum, state_sq):
    """At saved time s: every lane's u uᵀ and (u uᵀ)² added (the closed loop's state covariance)."""
    d, nb = u.shape
    for r in range(d):
        for c in range(d):
            t1, t2 = 0.0, 0.0
            for b in range(nb):
                p = u[r, b] * u[c, b]
                t1 += p
                t2 += p * p
            state_sum[s, r, c] += t1
            state_sq[s, r, c] += t2


@njit(cache=True)
def _control_lanes(Fu, Fy, x, xn, un, acc):
    """The feedback force of the step (from x̂ before it): F_u x̂ added to the next u and x̂, F_y x̂ to the record."""
    d, nb = x.shape
    m = Fy.shape[0]
    for r in range(d):
        for c in range(d):
            f = Fu[r, c]
            for b in range(nb):
                un[r, b] += f * x[c, b]
                xn[r, b] += f * x[c, b]
    for j in range(m):
        for c in range(d):
            f = Fy[j, c]
            for b in range(nb):
                acc[j, b] += f * x[c, b]


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


FILTER_LANES = 8  # trajectories a record filter steps in lockstep (a constant trip count: SIMD across them; one
# trajectory's step is a latency-bound chain, H x̂ then Φ x̂ + K ν)
FILTER_CHUNK = 256  # steps whose records and results a lane group holds transposed (lane innermost)


@njit(cache=True, nogil=True)
def filter_block(Phi, H, K, records, step0, scale, x, prev, stats, est, innov):
    """The filter x̂ ← Φ x̂ + K_n (ΔY_n − H x̂) over one block of records (n_traj, n_block, m) of steps step0 ..
    step0 + n_block − 1, from x̂ = x (n_traj, d; left holding x̂ after the block): est (n_traj, n_block, d) gets
    x̂ after each step, innov (n_traj, n_block, m) the innovations ν = (ΔY_n − H x̂_n)·scale, stats (n_traj, m, 2)
    adds Σ ν² and Σ ν_n ν_{n−1} (prev (n_traj, m): the last ν of the block before, used after the first step).
    Per trajectory the sums run in step order, so blocks and lanes of any size give the same bits. Releases the
    GIL."""
    n_traj = records.shape[0]
    for g in range(0, n_traj, FILTER_LANES):
        _filter_lanes(Phi, H, K, records, step0, scale, x, prev, stats, est, innov, g, min(FILTER_LANES, n_traj - g))


@njit(cache=True)
def _filter_lanes(Phi, H, K, records, step0, scale, x, prev, stats, est, innov, g, nb):
    """Trajectories g .. g + nb − 1 of ``filter_block``, stepped together in FILTER_LANES lanes (the lanes past nb
    filter zeros and are dropped), FILTER_CHUNK steps at a time through lane-innermost buffers."""
    n_block, m = records.shape[1], records.shape[2]
    d = Phi.shape[0]
    settled = K.shape[0] - 1  # the gains of later steps are the last ones (``filter_gains``)
    xl, xn = np.zeros((d, FILTER_LANES)), np.zeros((d, FILTER_LANES))
    nu, pv = np.zeros((m, FILTER_LANES)), np.zeros((m, FILTER_LANES))
    s0, s1 = np.zeros((m, FILTER_LANES)), np.zeros((m, FILTER_LANES))
    rl, il = np.zeros((FILTER_CHUNK, m, FILTER_LANES)), np.zeros((FILTER_CHUNK, m, FILTER_LANES))
    el = np.zeros((FILTER_CHUNK, d, FILTER_LANES))
    for b in range(nb):
        xl[:, b], pv[:, b], s0[:, b], s1[:, b] = x[g + b], prev[g + b], stats[g + b, :, 0], stats[g + b, :, 1]
    for c0 in range(0, n_block, FILTER_CHUNK):
        cn = min(FILTER_CHUNK, n_block - c0)
        for b in range(nb):
            rl[:cn, :, b] = records[g + b, c0:c0 + cn]
        for k in range(cn):
            step = step0 + c0 + k
            _innovate(H, rl, k, xl, scale, step > 0, nu, pv, s0, s1, il)
            _predict(Phi, K, min(step, settled), xl, nu, xn, el, k)
        for b in range(nb):
            est[g + b, c0:c0 + cn] = el[:cn, :, b]
            innov[g + b, c0:c0 + cn] = il[:cn, :, b]
    for b in range(nb):
        x[g + b], prev[g + b], stats[g + b, :, 0], stats[g + b, :, 1] = xl[:, b], pv[:, b], s0[:, b], s1[:, b]


@njit(cache=True, inline="always")
def _innovate(H, rl, k, xl, scale, lagged, nu, pv, s0, s1, il):
    """ν = ΔY − H x̂ per lane (nu; ΔY: rl[k]), its scaled value ν·scale (il[k], and the sums s0 += ν²,
    s1 += ν_n ν_{n−1} where ``lagged``; pv: the previous scaled ν)."""
    m, d = H.shape
    for j in range(m):
        for b in range(FILTER_LANES):
            nu[j, b] = rl[k, j, b]
        for c in range(d):
            hjc = H[j, c]
            for b in range(FILTER_LANES):
                nu[j, b] -= hjc * xl[c, b]
        for b in range(FILTER_LANES):
            v = nu[j, b] * scale
            il[k, j, b] = v
            s0[j, b] += v * v
        if lagged:
            for b in range(FILTER_LANES):
                s1[j, b] += il[k, j, b] * pv[j, b]
        for b in range(FILTER_LANES):
            pv[j, b] = il[k, j, b]


@njit(cache=True, inline="always")
def _predict(Phi, K, n, xl, nu, xn, el, k):
    """x̂ ← Φ x̂ + K_n ν per lane (xl updated in place through xn; el[k]: a copy of it)."""
    d, m = Phi.shape[0], nu.shape[0]
    for r in range(d):
        for b in range(FILTER_LANES):
            xn[r, b] = 0.0
        for c in range(d):
            prc = Phi[r, c]
            for b in range(FILTER_LANES):
                xn[r, b] += prc * xl[c, b]
        for j in range(m):
            krj = K[n, r, j]
            for b in range(FILTER_LANES):
                xn[r, b] += krj * nu[j, b]
    for r in range(d):
        for b in range(FILTER_LANES):
            xl[r, b] = xn[r, b]
            el[k, r, b] = xn[r, b]
