"""Ensemble stepper of the linear SDE du = A u dt + dW in any even dimension d = 2N (N >= 1 modes).

Both integrators of docs/physics.md "The stochastic picture":
    u_{n+1} = F u_n + L xi_n,  xi_n ~ N(0, I_d) = normals d n .. d n + d - 1 of the stepping stream
    (``sde_com.random``: stream (seed, trajectory, STEP_STREAM)).
    Euler-Maruyama: F = I + A dt, L L^T = D dt.  Exact: F = expm(A dt), L L^T = Q_dt (Van Loan).
A component xi_n[c] whose column L[:, c] is entirely zero cannot enter u; the stepper skips it (uses 0).
Trajectories are stepped in blocks of _LANES = 16 (a partial block is padded with lanes that are
computed and discarded): the xoshiro steps, F u + L xi and the sums are SIMD loops across the block,
the ziggurat's table lookups a scalar loop (AVX2 gathers do not pay), fix-ups a rare scalar pass.
Each lane's numbers come from its own stream only, and only IEEE adds and multiplies (no FMA
contraction) touch u, so results are bitwise independent of the lane, the block and the thread.
Each entry of L xi and F u + L xi is summed left to right, ((M[r, 0] v[0] + M[r, 1] v[1]) + ...), then
F u + L xi = (F u) + (L xi): the hand-unrolled d = 6 kernel and the loops of any other d compute the same
bits, and a d = 6 job compiles only the unrolled kernel (the Python entry points pick by d).

run_ensemble(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps,
             snapshot_steps, trace_count, trace_every)
    F, L           (d, d) float64
    initial        (n_traj, d) float64; local trajectory i has global index first_trajectory + i
    snapshot_steps (n_snap,) int64, sorted, values in [0, n_steps] (step 0 = initial state)
    trace_count    record full paths of local trajectories i < trace_count, at steps
                   0, trace_every, 2 trace_every, ... <= n_steps (n_trace = n_steps // trace_every + 1)
  -> sum_u     (n_traj, d)       sum of u_n over n = burn_in_steps + 1 .. n_steps
     sum_uu    (n_traj, d, d)    sum of u_n u_n^T over the same n (symmetric)
     n_avg     int               number of summed states, max(n_steps - burn_in_steps, 0)
     snapshots (n_traj, n_snap, d)   a view of the time-major array (n_snap, d, n_traj) the kernel fills
     traces    (trace_count, n_trace, d)   u_n at the trace steps
     noises    (trace_count, n_trace, d)   L xi_{n-1}, the increment that entered u_n; zero at n = 0
Chunking is exact: trajectories [0, 100) in one call equal [0, 37) and [37, 100) in two, bitwise.
Memory is independent of n_steps except for the requested snapshots and traces.

run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches)
  -> batch_sum_u (n_traj, n_batches, d), batch_sum_uu (n_traj, n_batches, d, d), batch_len:
     the states n = burn_in_steps + 1 .. burn_in_steps + n_batches * batch_len split into n_batches
     consecutive batches of batch_len = (n_steps - burn_in_steps) // n_batches states; the remainder
     at the end is stepped but not summed.

run_ensemble_varying(Fs, Ls, initial, seed, first_trajectory, snapshot_steps): one map (F_n, L_n) per step.

Inside, a block's job is the tuple (seed, first_trajectory, n_steps, burn_in_steps, batch_len, trace_count,
trace_every); its outputs are ``record`` and ``sums`` of ``sde_com.kernels.accumulators``.
"""


import numpy as np
from numba import njit, prange

from sde_com.kernels.accumulators import (
    FLUSH,
    flush,
    outer_moments,
    partial_sums,
    record_state,
    symmetrize,
)
from sde_com.random.normals import STEP_STREAM_ID, ZERO, _zig_fast, _zig_slow, fill_normals
from sde_com.random.philox import STEP_STREAM, split64, xoshiro_next, xoshiro_seed

_LANES = 16  # trajectories per vectorized block
_STEP_TAG = np.uint64(STEP_STREAM)
_TILES = np.int64(16)  # lanes of the statistics tiles (accumulators._TILE), a run-time value there


@njit(cache=True)
def _used_columns(L):
    """used[c]: column c of L has a nonzero entry (xi[c] enters u)."""
    d = L.shape[1]
    used = np.zeros(d, dtype=np.bool_)
    for c in range(d):
        for r in range(L.shape[0]):
            if L[r, c] != 0.0:
                used[c] = True
                break
    return used


@njit(cache=True, inline="always")
def _start_lanes(initial, i0, seed, first_trajectory):
    """The stepping streams' xoshiro states (S0, S1, S2, S3), each (_LANES,), of trajectories
    first_trajectory + i0 + j, and the states U (d, _LANES) of local trajectories i0 + j (zero when padding)."""
    d = initial.shape[1]
    n_valid = min(_LANES, initial.shape[0] - i0)
    U = np.zeros((d, _LANES))
    S0 = np.empty(_LANES, dtype=np.uint64)
    S1 = np.empty(_LANES, dtype=np.uint64)
    S2 = np.empty(_LANES, dtype=np.uint64)
    S3 = np.empty(_LANES, dtype=np.uint64)
    for j in range(_LANES):
        S0[j], S1[j], S2[j], S3[j] = xoshiro_seed(seed, first_trajectory + i0 + j, STEP_STREAM_ID)
        if j < n_valid:
            for r in range(d):
                U[r, j] = initial[i0 + j, r]
    return U, (S0, S1, S2, S3)


@njit(cache=True, inline="always")
def _candidates(RAW, XI, REJ, used):
    """The ziggurat's first candidates of the words RAW (d, _LANES) of the components that enter u, into XI;
    REJ[c, j] flags a rejected candidate. Returns whether any was rejected."""
    any_rej = False
    for c in range(RAW.shape[0]):
        if used[c]:
            for j in range(_LANES):
                z, ok = _zig_fast(RAW[c, j])
                XI[c, j] = z
                REJ[c, j] = not ok
                any_rej |= not ok
    return any_rej


@njit(cache=True, inline="always")
def _fix_rejections(RAW, XI, REJ, n_valid, seed, first_lane_trajectory, m0):
    """The rare scalar pass: normal m0 + c of lane j < n_valid from its fix-up words where REJ[c, j]."""
    k0, k1 = split64(seed)
    for j in range(n_valid):
        t0, t1 = split64(first_lane_trajectory + j)
        for c in range(RAW.shape[0]):
            if REJ[c, j]:
                XI[c, j] = _zig_slow(RAW[c, j], k0, k1, t0, t1, _STEP_TAG, m0 + c)


@njit(cache=True)
def _used_mask(L):
    """Bit c set: column c of L has a nonzero entry (xi[c] enters u); d < 63."""
    used = 0
    for c in range(L.shape[1]):
        for r in range(L.shape[0]):
            if L[r, c] != 0.0:
                used |= 1 << c
                break
    return used


@njit(cache=True, inline="always")
def _candidates6(RAW, XI, REJ, used):
    """_candidates with a bit mask per lane (bit c of REJ[j]: component c rejected), which the d = 6 kernel
    measured faster than flags; returns the lanes' masks ORed."""
    for j in range(_LANES):
        REJ[j] = 0
    for c in range(RAW.shape[0]):
        if (used >> c) & 1:
            for j in range(_LANES):
                z, ok = _zig_fast(RAW[c, j])
                XI[c, j] = z
                REJ[j] |= (1 - np.int64(ok)) << c
    any_rej = 0
    for j in range(_LANES):
        any_rej |= REJ[j]
    return any_rej


@njit(cache=True, inline="always")
def _fix_rejections6(RAW, XI, REJ, n_valid, seed, first_lane_trajectory, m0):
    """_fix_rejections for the bit masks of _candidates6."""
    k0, k1 = split64(seed)
    for j in range(n_valid):
        if REJ[j]:
            t0, t1 = split64(first_lane_trajectory + j)
            for c in range(RAW.shape[0]):
                if (REJ[j] >> c) & 1:
                    XI[c, j] = _zig_slow(RAW[c, j], k0, k1, t0, t1, _STEP_TAG, m0 + c)


@njit(cache=True, inline="always")
def _draw6(S, RAW):
    """RAW[c, j] <- the next 6 words of lane j's xoshiro256++ sequence, c = 0 .. 5 (vectorized across lanes)."""
    S0, S1, S2, S3 = S
    for j in range(_LANES):
        a0, a1, a2, a3 = S0[j], S1[j], S2[j], S3[j]
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[0, j] = w
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[1, j] = w
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[2, j] = w
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[3, j] = w
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[4, j] = w
        w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
        RAW[5, j] = w
        S0[j], S1[j], S2[j], S3[j] = a0, a1, a2, a3


@njit(cache=True, inline="always")
def _draw(S, RAW):
    """RAW[c, j] <- the next d words of lane j's xoshiro256++ sequence, c = 0 .. d - 1, any d."""
    S0, S1, S2, S3 = S
    for c in range(RAW.shape[0]):
        for j in range(_LANES):
            RAW[c, j], S0[j], S1[j], S2[j], S3[j] = xoshiro_next(S0[j], S1[j], S2[j], S3[j])


_ROWS = 4  # rows of M per pass of _matvec (its four accumulators m0..m3 are written out: keep it 4)


@njit(cache=True, inline="always")
def _matvec(M, X, out, acc):
    """out[r, j] = sum_c M[r, c] X[c, j], summed left to right from c = 0 (the order of the unrolled step).

    _ROWS rows at a time, their _ROWS × _LANES sums in the caller's scratch ``acc`` (allocated once per block,
    not per step): each X[c, :] load feeds four rows; the same sums bit for bit as one row at a time, and
    faster (docs/performance.md, "Kernel throughput for N modes")."""
    d = M.shape[0]
    r = 0
    while r + _ROWS <= d:
        for k in range(_ROWS):
            m = M[r + k, 0]
            for j in range(_LANES):
                acc[k, j] = m * X[0, j]
        for c in range(1, d):
            m0, m1, m2, m3 = M[r, c], M[r + 1, c], M[r + 2, c], M[r + 3, c]
            for j in range(_LANES):
                x = X[c, j]
                acc[0, j] += m0 * x
                acc[1, j] += m1 * x
                acc[2, j] += m2 * x
                acc[3, j] += m3 * x
        for k in range(_ROWS):
            for j in range(_LANES):
                out[r + k, j] = acc[k, j]
        r += _ROWS
    while r < d:  # the last d mod _ROWS rows, one at a time
        for j in range(_LANES):
            out[r, j] = M[r, 0] * X[0, j]
        for c in range(1, d):
            for j in range(_LANES):
                out[r, j] += M[r, c] * X[c, j]
        r += 1


@njit(cache=True, inline="always")
def _step(U, V, W, XI, F, L, ACC):
    """u <- F u + L xi and W <- L xi for every lane, any d; V (d, _LANES) and ACC (_ROWS, _LANES) are scratch."""
    _matvec(L, XI, W, ACC)
    _matvec(F, U, V, ACC)
    for r in range(U.shape[0]):
        for j in range(_LANES):
            U[r, j] = V[r, j] + W[r, j]


@njit(cache=True, inline="always")
def _scratch(d):
    """The block's work arrays W, XI (zero: unused components stay 0), RAW, PU, PUU."""
    return (
        np.zeros((d, _LANES)),
        np.zeros((d, _LANES)),
        np.zeros((d, _LANES), dtype=np.uint64),
        np.zeros((d, _LANES)),
        np.zeros((d * (d + 1) // 2, _LANES)),
    )


@njit(cache=True)
def _block6(F, L, initial, i0, job, record, sums):
    """Local trajectories i0 .. i0 + _LANES - 1 (those < n_traj are kept) of u_{n+1} = F u_n + L xi_n at
    d = 6, unrolled and vectorized across the lanes: snapshots, traces and batch sums (sum_u (n_traj, n_batch,
    6), sum_uu (n_traj, n_batch, 6, 6); batch b sums states burn_in + b batch_len + 1 .. burn_in + (b + 1)
    batch_len) written in place.

    The unrolled step is written here, not in a helper: the entries of F and L then stay in registers across
    the steps (a helper, even inlined, measured 15-25 % slower).
    """
    seed, first_trajectory, n_steps, burn_in_steps, batch_len, trace_count, trace_every = job
    n_valid = min(_LANES, initial.shape[0] - i0)
    n_traced = max(min(n_valid, trace_count - i0), 0)
    n_summed = sums[0].shape[1] * batch_len
    f00, f01, f02, f03, f04, f05 = F[0, 0], F[0, 1], F[0, 2], F[0, 3], F[0, 4], F[0, 5]
    f10, f11, f12, f13, f14, f15 = F[1, 0], F[1, 1], F[1, 2], F[1, 3], F[1, 4], F[1, 5]
    f20, f21, f22, f23, f24, f25 = F[2, 0], F[2, 1], F[2, 2], F[2, 3], F[2, 4], F[2, 5]
    f30, f31, f32, f33, f34, f35 = F[3, 0], F[3, 1], F[3, 2], F[3, 3], F[3, 4], F[3, 5]
    f40, f41, f42, f43, f44, f45 = F[4, 0], F[4, 1], F[4, 2], F[4, 3], F[4, 4], F[4, 5]
    f50, f51, f52, f53, f54, f55 = F[5, 0], F[5, 1], F[5, 2], F[5, 3], F[5, 4], F[5, 5]
    l00, l01, l02, l03, l04, l05 = L[0, 0], L[0, 1], L[0, 2], L[0, 3], L[0, 4], L[0, 5]
    l10, l11, l12, l13, l14, l15 = L[1, 0], L[1, 1], L[1, 2], L[1, 3], L[1, 4], L[1, 5]
    l20, l21, l22, l23, l24, l25 = L[2, 0], L[2, 1], L[2, 2], L[2, 3], L[2, 4], L[2, 5]
    l30, l31, l32, l33, l34, l35 = L[3, 0], L[3, 1], L[3, 2], L[3, 3], L[3, 4], L[3, 5]
    l40, l41, l42, l43, l44, l45 = L[4, 0], L[4, 1], L[4, 2], L[4, 3], L[4, 4], L[4, 5]
    l50, l51, l52, l53, l54, l55 = L[5, 0], L[5, 1], L[5, 2], L[5, 3], L[5, 4], L[5, 5]
    used = _used_mask(L)
    U, S = _start_lanes(initial, i0, seed, first_trajectory)
    W, XI, RAW, PU, PUU = _scratch(6)
    REJ = np.zeros(_LANES, dtype=np.int64)
    snapshot_steps = record[0]
    n_snap = snapshot_steps.shape[0]
    js = record_state(ZERO, U, W, i0, n_valid, n_traced, ZERO, trace_every, record)
    count = 0
    for n in range(1, n_steps + 1):
        _draw6(S, RAW)  # words of normals m = 6 (n - 1) .. 6 (n - 1) + 5
        if _candidates6(RAW, XI, REJ, used):
            _fix_rejections6(RAW, XI, REJ, n_valid, seed, first_trajectory + i0, 6 * (n - 1))
        m = n - burn_in_steps  # 1-based index of the summed state
        summed = 1 <= m <= n_summed
        if summed:  # u <- F u + L xi, then the partial sums of u and u u^T (upper triangle, row-major)
            for j in range(_LANES):
                u0, u1, u2, u3, u4, u5 = U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j]
                x0, x1, x2, x3, x4, x5 = XI[0, j], XI[1, j], XI[2, j], XI[3, j], XI[4, j], XI[5, j]
                w0 = l00 * x0 + l01 * x1 + l02 * x2 + l03 * x3 + l04 * x4 + l05 * x5
                w1 = l10 * x0 + l11 * x1 + l12 * x2 + l13 * x3 + l14 * x4 + l15 * x5
                w2 = l20 * x0 + l21 * x1 + l22 * x2 + l23 * x3 + l24 * x4 + l25 * x5
                w3 = l30 * x0 + l31 * x1 + l32 * x2 + l33 * x3 + l34 * x4 + l35 * x5
                w4 = l40 * x0 + l41 * x1 + l42 * x2 + l43 * x3 + l44 * x4 + l45 * x5
                w5 = l50 * x0 + l51 * x1 + l52 * x2 + l53 * x3 + l54 * x4 + l55 * x5
                v0 = f00 * u0 + f01 * u1 + f02 * u2 + f03 * u3 + f04 * u4 + f05 * u5 + w0
                v1 = f10 * u0 + f11 * u1 + f12 * u2 + f13 * u3 + f14 * u4 + f15 * u5 + w1
                v2 = f20 * u0 + f21 * u1 + f22 * u2 + f23 * u3 + f24 * u4 + f25 * u5 + w2
                v3 = f30 * u0 + f31 * u1 + f32 * u2 + f33 * u3 + f34 * u4 + f35 * u5 + w3
                v4 = f40 * u0 + f41 * u1 + f42 * u2 + f43 * u3 + f44 * u4 + f45 * u5 + w4
                v5 = f50 * u0 + f51 * u1 + f52 * u2 + f53 * u3 + f54 * u4 + f55 * u5 + w5
                U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j] = v0, v1, v2, v3, v4, v5
                W[0, j], W[1, j], W[2, j], W[3, j], W[4, j], W[5, j] = w0, w1, w2, w3, w4, w5
                PU[0, j] += v0
                PU[1, j] += v1
                PU[2, j] += v2
                PU[3, j] += v3
                PU[4, j] += v4
                PU[5, j] += v5
                PUU[0, j] += v0 * v0
                PUU[1, j] += v0 * v1
                PUU[2, j] += v0 * v2
                PUU[3, j] += v0 * v3
                PUU[4, j] += v0 * v4
                PUU[5, j] += v0 * v5
                PUU[6, j] += v1 * v1
                PUU[7, j] += v1 * v2
                PUU[8, j] += v1 * v3
                PUU[9, j] += v1 * v4
                PUU[10, j] += v1 * v5
                PUU[11, j] += v2 * v2
                PUU[12, j] += v2 * v3
                PUU[13, j] += v2 * v4
                PUU[14, j] += v2 * v5
                PUU[15, j] += v3 * v3
                PUU[16, j] += v3 * v4
                PUU[17, j] += v3 * v5
                PUU[18, j] += v4 * v4
                PUU[19, j] += v4 * v5
                PUU[20, j] += v5 * v5
        else:
            for j in range(_LANES):
                u0, u1, u2, u3, u4, u5 = U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j]
                x0, x1, x2, x3, x4, x5 = XI[0, j], XI[1, j], XI[2, j], XI[3, j], XI[4, j], XI[5, j]
                w0 = l00 * x0 + l01 * x1 + l02 * x2 + l03 * x3 + l04 * x4 + l05 * x5
                w1 = l10 * x0 + l11 * x1 + l12 * x2 + l13 * x3 + l14 * x4 + l15 * x5
                w2 = l20 * x0 + l21 * x1 + l22 * x2 + l23 * x3 + l24 * x4 + l25 * x5
                w3 = l30 * x0 + l31 * x1 + l32 * x2 + l33 * x3 + l34 * x4 + l35 * x5
                w4 = l40 * x0 + l41 * x1 + l42 * x2 + l43 * x3 + l44 * x4 + l45 * x5
                w5 = l50 * x0 + l51 * x1 + l52 * x2 + l53 * x3 + l54 * x4 + l55 * x5
                U[0, j] = f00 * u0 + f01 * u1 + f02 * u2 + f03 * u3 + f04 * u4 + f05 * u5 + w0
                U[1, j] = f10 * u0 + f11 * u1 + f12 * u2 + f13 * u3 + f14 * u4 + f15 * u5 + w1
                U[2, j] = f20 * u0 + f21 * u1 + f22 * u2 + f23 * u3 + f24 * u4 + f25 * u5 + w2
                U[3, j] = f30 * u0 + f31 * u1 + f32 * u2 + f33 * u3 + f34 * u4 + f35 * u5 + w3
                U[4, j] = f40 * u0 + f41 * u1 + f42 * u2 + f43 * u3 + f44 * u4 + f45 * u5 + w4
                U[5, j] = f50 * u0 + f51 * u1 + f52 * u2 + f53 * u3 + f54 * u4 + f55 * u5 + w5
                W[0, j], W[1, j], W[2, j], W[3, j], W[4, j], W[5, j] = w0, w1, w2, w3, w4, w5
        if js < n_snap and snapshot_steps[js] == n or n_traced > 0 and n % trace_every == 0:  # call rarely:
            js = record_state(n, U, W, i0, n_valid, n_traced, js, trace_every, record)  # inlined, 25 % slower
        if summed:
            count += 1
            if count == FLUSH or m % batch_len == 0:
                flush(PU, PUU, sums, i0, n_valid, (m - 1) // batch_len)
                count = 0
    symmetrize(sums[1], i0, n_valid)


@njit(cache=True)
def _block(F, L, initial, i0, job, record, sums):
    """_block6 for any d = F.shape[0], with loops: the same streams, arithmetic order and outputs."""
    seed, first_trajectory, n_steps, burn_in_steps, batch_len, trace_count, trace_every = job
    d = F.shape[0]
    n_valid = min(_LANES, initial.shape[0] - i0)
    n_traced = max(min(n_valid, trace_count - i0), 0)
    n_summed = sums[0].shape[1] * batch_len
    used = _used_columns(L)
    U, S = _start_lanes(initial, i0, seed, first_trajectory)
    W, XI, RAW, PU, PUU = _scratch(d)
    REJ = np.zeros((d, _LANES), dtype=np.bool_)
    V = np.zeros((d, _LANES))
    ACC = np.zeros((_ROWS, _LANES))
    snapshot_steps = record[0]
    n_snap = snapshot_steps.shape[0]
    js = record_state(ZERO, U, W, i0, n_valid, n_traced, ZERO, trace_every, record)
    count = 0
    for n in range(1, n_steps + 1):
        _draw(S, RAW)  # words of normals m = d (n - 1) .. d (n - 1) + d - 1
        if _candidates(RAW, XI, REJ, used):
            _fix_rejections(RAW, XI, REJ, n_valid, seed, first_trajectory + i0, d * (n - 1))
        _step(U, V, W, XI, F, L, ACC)
        m = n - burn_in_steps  # 1-based index of the summed state
        summed = 1 <= m <= n_summed
        if summed:
            partial_sums(U, PU, PUU)
        if js < n_snap and snapshot_steps[js] == n or n_traced > 0 and n % trace_every == 0:  # call rarely:
            js = record_state(n, U, W, i0, n_valid, n_traced, js, trace_every, record)  # inlined, 25 % slower
        if summed:
            count += 1
            if count == FLUSH or m % batch_len == 0:
                flush(PU, PUU, sums, i0, n_valid, (m - 1) // batch_len)
                count = 0
    symmetrize(sums[1], i0, n_valid)


@njit(cache=True, parallel=True, nogil=True)
def _run_blocks6(F, L, initial, job, record, sums):
    """All blocks of _LANES trajectories at d = 6 in parallel (prange over blocks); outputs written in place.

    Numba's parallel loop, not a Python thread pool: the pool measured 3–19 % fewer trajectory-steps/s
    (A/B against prange, 5 pairs, 2000 trajectories × 2000 steps), for about 1.5 s less compile per job."""
    for blk in prange((initial.shape[0] + _LANES - 1) // _LANES):
        _block6(F, L, initial, blk * _LANES, job, record, sums)


@njit(cache=True, parallel=True, nogil=True)
def _run_blocks(F, L, initial, job, record, sums):
    """All blocks of _LANES trajectories at any d in parallel (prange over blocks); outputs written in place."""
    for blk in prange((initial.shape[0] + _LANES - 1) // _LANES):
        _block(F, L, initial, blk * _LANES, job, record, sums)


@njit(cache=True, parallel=True, nogil=True)
def _run_moments6(F, L, initial, job, record, sums, block_size, out, out_sq):
    """``_run_blocks6`` in parallel over statistics blocks of ``block_size`` (a multiple of _LANES)
    trajectories: each block's lane blocks are stepped, then its snapshot moments made at once
    (``accumulators.outer_moments``: the same sums, bit for bit, as ``block_outer_moments``) while its
    snapshots are still in cache, not in a second pass over all of them in memory. ``prange``: a thread pool
    over ranges of blocks compiled faster but ran the transient benchmark 10 % slower (measured)."""
    n = initial.shape[0]
    for b in prange((n + block_size - 1) // block_size):
        for i0 in range(b * block_size, min(n, (b + 1) * block_size), _LANES):
            _block6(F, L, initial, i0, job, record, sums)
        outer_moments(record[1], block_size, _TILES, out, out_sq, b, b + 1)


def run_ensemble_moments(F, L, initial, seed, first_trajectory, n_steps, snapshot_steps, trace_count, trace_every,
                         block_size):
    """``run_ensemble`` at d = 6 for a transient, with the snapshot moments of every statistics block of
    ``block_size`` trajectories (a multiple of 16) made as the lanes are stepped: → (sum, sum_sq) as
    ``accumulators.block_outer_moments`` of the snapshots (k, n_snap, 21), traces, noises."""
    n_traj, d = initial.shape
    n_trace = n_steps // trace_every + 1 if trace_count > 0 else 0
    sums = (np.zeros((n_traj, 1, d)), np.zeros((n_traj, 1, d, d)))
    record = (snapshot_steps, np.zeros((snapshot_steps.shape[0], d, n_traj)), np.zeros((trace_count, n_trace, d)),
              np.zeros((trace_count, n_trace, d)))
    job = (seed, first_trajectory, n_steps, np.int64(0), np.int64(1), trace_count, trace_every)
    k = (n_traj + block_size - 1) // block_size
    out = np.zeros((k, snapshot_steps.shape[0], d * (d + 1) // 2))
    out_sq = np.zeros_like(out)
    _run_moments6(F, L, initial, job, record, sums, np.int64(block_size), out, out_sq)
    return out, out_sq, record[2], record[3]


def _run(F, L, initial, job, record, sums):
    """The compiled blocks for F's dimension: unrolled at d = 6 (the generic loops are then never compiled)."""
    (_run_blocks6 if F.shape[0] == 6 else _run_blocks)(F, L, initial, job, record, sums)


def run_ensemble(
    F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, snapshot_steps, trace_count, trace_every
):
    """Ensemble of the linear recursion u_{n+1} = F u_n + L xi_n in d = F.shape[0] dimensions; see the module
    docstring."""
    n_traj, d = initial.shape
    n_avg = max(n_steps - burn_in_steps, 0)
    n_trace = n_steps // trace_every + 1 if trace_count > 0 else 0
    sums = (np.zeros((n_traj, 1, d)), np.zeros((n_traj, 1, d, d)))
    record = (
        snapshot_steps,
        np.zeros((snapshot_steps.shape[0], d, n_traj)),  # time-major (kernels.accumulators)
        np.zeros((trace_count, n_trace, d)),
        np.zeros((trace_count, n_trace, d)),
    )
    job = (seed, first_trajectory, n_steps, burn_in_steps, max(n_avg, 1), trace_count, trace_every)
    _run(F, L, initial, job, record, sums)
    snapshots = record[1].transpose(2, 0, 1)  # (n_traj, n_snap, d), a view
    return (sums[0].reshape((n_traj, d)), sums[1].reshape((n_traj, d, d)), n_avg, snapshots, *record[2:])


def run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches):
    """Batch sums of u and u u^T along each trajectory (batch-means error bars for long runs);
    same recursion and streams as run_ensemble, see the module docstring."""
    n_traj, d = initial.shape
    batch_len = max(n_steps - burn_in_steps, 0) // n_batches
    sums = (np.zeros((n_traj, n_batches, d)), np.zeros((n_traj, n_batches, d, d)))
    if batch_len > 0:
        no_rows = np.zeros((0, 0, d))
        record = (np.zeros(0, dtype=np.int64), np.zeros((0, d, n_traj)), no_rows, no_rows)
        job = (seed, first_trajectory, n_steps, burn_in_steps, batch_len, 0, 1)  # no traces
        _run(F, L, initial, job, record, sums)
    return sums[0], sums[1], batch_len


@njit(cache=True, parallel=True, nogil=True)
def run_ensemble_varying(Fs, Ls, initial, seed, first_trajectory, snapshot_steps):
    """Ensemble of u_{n+1} = F_n u_n + L_n xi_n with one map per step (a drift A(t) that changes in time).

    Fs, Ls (n_steps, d, d); xi_n = normals d n .. d n + d - 1 of the stepping stream of (seed, trajectory),
    the same numbers ``run_ensemble`` uses, so a constant map reproduces it up to rounding. Returns the
    snapshots (n_traj, n_snap, d) at the sorted steps ``snapshot_steps`` (0 = initial state).
    """
    n_traj = initial.shape[0]
    n_steps, d = Fs.shape[0], Fs.shape[1]
    n_snap = snapshot_steps.shape[0]
    out = np.zeros((n_traj, n_snap, d))
    for i in prange(n_traj):
        xi = np.empty(d * n_steps)
        fill_normals(seed, first_trajectory + i, ZERO, STEP_STREAM_ID, xi)
        u = initial[i].copy()
        v = np.empty(d)
        j = 0
        while j < n_snap and snapshot_steps[j] == 0:
            for r in range(d):  # element-wise: an array assignment compiles numba's shape-error path (~2 s)
                out[i, j, r] = u[r]
            j += 1
        for n in range(n_steps):
            for r in range(d):
                acc = 0.0
                for c in range(d):
                    acc += Fs[n, r, c] * u[c]
                w = 0.0
                for c in range(d):
                    w += Ls[n, r, c] * xi[d * n + c]
                v[r] = acc + w
            for r in range(d):
                u[r] = v[r]
            while j < n_snap and snapshot_steps[j] == n + 1:
                for r in range(d):
                    out[i, j, r] = u[r]
                j += 1
    return out
