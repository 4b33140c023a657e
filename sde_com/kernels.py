"""Numba kernels: a counter-based RNG and the ensemble stepper of the linear SDE du = A u dt + dW.

Plain array functions that check nothing; the Python layer validates shapes, dtypes and finiteness.
Quadrature order of every 6-vector: u = (xU, yU, xV, yV, q, p).

Random numbers
    Philox4x32-10 (Salmon et al., SC'11; the generator of Random123 and numpy.random.Philox).
    key     = (seed & 0xffffffff, seed >> 32)                      seed: int64 or uint64, taken mod 2**64
    counter = (trajectory & 0xffffffff, trajectory >> 32,          global trajectory index
               block & 0xffffffff, (block >> 32) | stream_tag << 24)
    A stream is fixed by (seed, trajectory, stream_tag) alone: no dependence on threads or chunking.
    Limits: block < 2**56, 0 <= stream_tag < 256. Tag 0 is the stepping stream; initial states use 1.
    One block (one Philox call) gives 4 uint32 -> 2 uniforms of 53 bits in (0, 1] (never 0) -> 2
    standard normals by Box-Muller (r cos t, r sin t). Normal k of a stream is item k % 2 of block k // 2.

Ensemble stepper (both integrators of PHYSICS.md "The stochastic picture")
    u_{n+1} = F u_n + L xi_n,  xi_n ~ N(0, I_6) = normals 6n .. 6n+5 of the stepping stream.
    Euler-Maruyama: F = I + A dt, L L^T = D dt.  Exact: F = expm(A dt), L L^T = Q_dt (Van Loan).

    run_ensemble(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps,
                 snapshot_steps, trace_count, trace_every)
        F, L           (6, 6) float64
        initial        (n_traj, 6) float64; local trajectory i has global index first_trajectory + i
        snapshot_steps (n_snap,) int64, sorted, values in [0, n_steps] (step 0 = initial state)
        trace_count    record full paths of local trajectories i < trace_count, at steps
                       0, trace_every, 2 trace_every, ... <= n_steps (n_trace = n_steps // trace_every + 1)
      -> sum_u     (n_traj, 6)       sum of u_n over n = burn_in_steps + 1 .. n_steps
         sum_uu    (n_traj, 6, 6)    sum of u_n u_n^T over the same n (symmetric)
         n_avg     int               number of summed states, max(n_steps - burn_in_steps, 0)
         snapshots (n_traj, n_snap, 6)
         traces    (trace_count, n_trace, 6)   u_n at the trace steps
         noises    (trace_count, n_trace, 6)   L xi_{n-1}, the increment that entered u_n; zero at n = 0
    Chunking is exact: trajectories [0, 100) in one call equal [0, 37) and [37, 100) in two, bitwise.
    Memory is independent of n_steps except for the requested snapshots and traces.

    run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches)
      -> batch_sum_u (n_traj, n_batches, 6), batch_sum_uu (n_traj, n_batches, 6, 6), batch_len:
         the states n = burn_in_steps + 1 .. burn_in_steps + n_batches * batch_len split into n_batches
         consecutive batches of batch_len = (n_steps - burn_in_steps) // n_batches states; the remainder
         at the end is stepped but not summed.
"""

import numpy as np
from numba import njit, prange

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)
_TWO_PI = 2.0 * np.pi
_TWO_M53 = 2.0**-53
_FLUSH = 1024  # partial sums are added to the totals every _FLUSH states (limits rounding growth)
STEP_STREAM = 0
INITIAL_STREAM = 1


@njit(cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 block function of Salmon et al. (2011): 4 counter words, 2 key words -> 4 uint32.

    Words are held in uint64 and masked to 32 bits; returns a tuple of four uint64 < 2**32.
    """
    x0 = np.uint64(c0) & _MASK32
    x1 = np.uint64(c1) & _MASK32
    x2 = np.uint64(c2) & _MASK32
    x3 = np.uint64(c3) & _MASK32
    y0 = np.uint64(k0) & _MASK32
    y1 = np.uint64(k1) & _MASK32
    for _ in range(10):
        p0 = _PHILOX_M0 * x0
        p1 = _PHILOX_M1 * x2
        x0, x1, x2, x3 = (
            (p1 >> _SHIFT32) ^ x1 ^ y0,
            p1 & _MASK32,
            (p0 >> _SHIFT32) ^ x3 ^ y1,
            p0 & _MASK32,
        )
        y0 = (y0 + _PHILOX_W0) & _MASK32
        y1 = (y1 + _PHILOX_W1) & _MASK32
    return x0, x1, x2, x3


@njit(cache=True)
def uniform53(a, b):
    """Uniform in (0, 1] from two uint32 words: 53 bits (a >> 5, b >> 6), value (k + 1) 2**-53."""
    k = ((a >> np.uint64(5)) << np.uint64(26)) | (b >> np.uint64(6))
    return (float(k) + 1.0) * _TWO_M53


@njit(cache=True)
def fill_normals(seed, trajectory, first_block, stream_tag, out):
    """Fill ``out`` with standard normals of stream (seed, trajectory, stream_tag) from ``first_block`` on.

    Box-Muller, 2 normals per Philox block; an odd length drops the last sine. Returns the next free block.
    """
    s = np.uint64(seed)
    t = np.uint64(trajectory)
    k0 = s & _MASK32
    k1 = s >> _SHIFT32
    t0 = t & _MASK32
    t1 = t >> _SHIFT32
    tag = np.uint64(stream_tag) << np.uint64(24)
    block = np.uint64(first_block)
    n = out.shape[0]
    for i in range(0, n, 2):
        r0, r1, r2, r3 = philox4x32(t0, t1, block & _MASK32, (block >> _SHIFT32) | tag, k0, k1)
        radius = np.sqrt(-2.0 * np.log(uniform53(r0, r1)))
        angle = _TWO_PI * uniform53(r2, r3)
        out[i] = radius * np.cos(angle)
        if i + 1 < n:
            out[i + 1] = radius * np.sin(angle)
        block += np.uint64(1)
    return np.int64(block)


@njit(cache=True)
def standard_normals(seed, trajectory, n):
    """The first n normals of the stepping stream of one trajectory (xi_k[j] is item 6 k + j)."""
    out = np.empty(n)
    fill_normals(seed, trajectory, 0, STEP_STREAM, out)
    return out


@njit(cache=True, parallel=True)
def sample_gaussian(chol, seed, first_trajectory, n_traj, stream_tag=INITIAL_STREAM):
    """Initial states u0 = chol @ z, z ~ N(0, I_6) from stream (seed, first_trajectory + i, stream_tag).

    Use stream_tag >= 1 so the draws never overlap the stepping stream (tag 0). Returns (n_traj, 6).
    """
    out = np.empty((n_traj, 6))
    for i in prange(n_traj):
        z = np.empty(6)
        fill_normals(seed, first_trajectory + i, 0, stream_tag, z)
        for r in range(6):
            acc = 0.0
            for c in range(6):
                acc += chol[r, c] * z[c]
            out[i, r] = acc
    return out


@njit(cache=True)
def _trajectory(
    F,
    L,
    u0,
    seed,
    trajectory,
    n_steps,
    burn_in_steps,
    batch_len,
    snapshot_steps,
    snaps,
    trace_every,
    trace,
    noise,
    sum_u,
    sum_uu,
):
    """One trajectory of u_{n+1} = F u_n + L xi_n (Euler-Maruyama or exact step, PHYSICS.md
    "The stochastic picture"), writing snapshots, an optional trace and batch sums in place.

    sum_u (n_batch, 6), sum_uu (n_batch, 6, 6): batch b sums states burn_in + b batch_len + 1 ..
    burn_in + (b + 1) batch_len. ``trace`` and ``noise`` may have zero rows (no trace).
    """
    u = u0.copy()
    v = np.empty(6)
    w = np.zeros(6)
    xi = np.empty(6)
    part_u = np.zeros(6)
    part_uu = np.zeros((6, 6))
    n_summed = sum_u.shape[0] * batch_len
    n_snap = snapshot_steps.shape[0]
    has_trace = trace.shape[0] > 0
    j = 0
    count = 0
    for n in range(n_steps + 1):
        if n > 0:
            fill_normals(seed, trajectory, 3 * (n - 1), STEP_STREAM, xi)
            for r in range(6):
                wr = 0.0
                vr = 0.0
                for c in range(6):
                    wr += L[r, c] * xi[c]
                    vr += F[r, c] * u[c]
                w[r] = wr
                v[r] = vr + wr
            for r in range(6):
                u[r] = v[r]
        while j < n_snap and snapshot_steps[j] == n:
            for r in range(6):
                snaps[j, r] = u[r]
            j += 1
        if has_trace and n % trace_every == 0:
            k = n // trace_every
            for r in range(6):
                trace[k, r] = u[r]
                noise[k, r] = w[r]
        m = n - burn_in_steps  # 1-based index of the summed state
        if 1 <= m <= n_summed:
            for r in range(6):
                part_u[r] += u[r]
                for c in range(r, 6):
                    part_uu[r, c] += u[r] * u[c]
            count += 1
            if count == _FLUSH or m % batch_len == 0:
                b = (m - 1) // batch_len
                for r in range(6):
                    sum_u[b, r] += part_u[r]
                    part_u[r] = 0.0
                    for c in range(r, 6):
                        sum_uu[b, r, c] += part_uu[r, c]
                        part_uu[r, c] = 0.0
                count = 0
    for b in range(sum_u.shape[0]):
        for r in range(6):
            for c in range(r + 1, 6):
                sum_uu[b, c, r] = sum_uu[b, r, c]


@njit(cache=True, parallel=True)
def run_ensemble(
    F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, snapshot_steps, trace_count, trace_every
):
    """Ensemble of the linear recursion u_{n+1} = F u_n + L xi_n; see the module docstring."""
    n_traj = initial.shape[0]
    n_avg = max(n_steps - burn_in_steps, 0)
    n_trace = n_steps // trace_every + 1 if trace_count > 0 else 0
    sum_u = np.zeros((n_traj, 1, 6))
    sum_uu = np.zeros((n_traj, 1, 6, 6))
    snapshots = np.zeros((n_traj, snapshot_steps.shape[0], 6))
    traces = np.zeros((trace_count, n_trace, 6))
    noises = np.zeros((trace_count, n_trace, 6))
    no_trace = np.zeros((0, 6))
    for i in prange(n_traj):
        if i < trace_count:
            trace_i = traces[i]
            noise_i = noises[i]
        else:
            trace_i = no_trace
            noise_i = no_trace
        _trajectory(
            F,
            L,
            initial[i],
            seed,
            first_trajectory + i,
            n_steps,
            burn_in_steps,
            max(n_avg, 1),
            snapshot_steps,
            snapshots[i],
            trace_every,
            trace_i,
            noise_i,
            sum_u[i],
            sum_uu[i],
        )
    return (sum_u.reshape((n_traj, 6)), sum_uu.reshape((n_traj, 6, 6)), n_avg, snapshots, traces, noises)


@njit(cache=True, parallel=True)
def run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches):
    """Batch sums of u and u u^T along each trajectory (batch-means error bars for long runs);
    same recursion and streams as run_ensemble, see the module docstring."""
    n_traj = initial.shape[0]
    batch_len = max(n_steps - burn_in_steps, 0) // n_batches
    sum_u = np.zeros((n_traj, n_batches, 6))
    sum_uu = np.zeros((n_traj, n_batches, 6, 6))
    no_snapshot_steps = np.zeros(0, dtype=np.int64)
    no_rows = np.zeros((0, 6))
    for i in prange(n_traj):
        if batch_len > 0:
            _trajectory(
                F,
                L,
                initial[i],
                seed,
                first_trajectory + i,
                n_steps,
                burn_in_steps,
                batch_len,
                no_snapshot_steps,
                no_rows,
                1,
                no_rows,
                no_rows,
                sum_u[i],
                sum_uu[i],
            )
    return sum_u, sum_uu, batch_len
