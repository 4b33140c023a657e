"""What the steppers keep of a block of trajectories: snapshots, traces, and sums of u and u uᵀ.

Arrays are per block of lanes: U, W (d, lanes) the states and noise increments, PU (d, lanes) and PUU
(d (d + 1) / 2, lanes) the partial sums of u and of the upper triangle of u uᵀ (row-major). Partial sums are
added to the totals every FLUSH states and at the end of each batch, which bounds the rounding growth of
the totals; every lane's numbers are added in the same order whatever the block, so the totals are bitwise
independent of the lane, the block and the thread.

``record = (snapshot_steps, snapshots, traces, noises)`` and ``sums = (sum_u, sum_uu)`` are the stepper's
outputs, written in place (shapes in ``sde_com.kernels.ensemble``; the snapshots are stored time-major,
(n_snap, d, n_traj), so that a block's lanes are written, and read by ``block_outer_moments``, contiguously).

Statistics blocks (``block_outer_moments``, ``block_moments``): per block of S consecutive trajectories, the
sums of x and of x² (elementwise) of a per-trajectory quantity x, in an order fixed by the trajectory index
within the block only, so a block's sums are the same bits whichever unit of work computed them.
"""

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

FLUSH = 1024  # partial sums are added to the totals every FLUSH states (limits rounding growth)


@njit(cache=True)
def record_state(n, U, W, i0, n_valid, n_traced, js, trace_every, record):
    """Write state n of the block's lanes to the snapshots (if n is a snapshot step) and the traces and
    noises (if n is a trace step); returns the index of the next snapshot step."""
    snapshot_steps, snapshots, traces, noises = record
    d = U.shape[0]
    while js < snapshot_steps.shape[0] and snapshot_steps[js] == n:
        for r in range(d):
            for j in range(n_valid):
                snapshots[js, r, i0 + j] = U[r, j]
        js += 1
    if n_traced > 0 and n % trace_every == 0:
        k = n // trace_every
        for j in range(n_traced):
            for r in range(d):
                traces[i0 + j, k, r] = U[r, j]
                noises[i0 + j, k, r] = W[r, j]
    return js


@njit(cache=True, inline="always")
def partial_sums(U, PU, PUU):
    """PU += u, PUU += the upper triangle of u uᵀ (row-major), lane by lane (any d)."""
    d, lanes = U.shape
    q = 0
    for r in range(d):
        for j in range(lanes):
            PU[r, j] += U[r, j]
        for c in range(r, d):
            for j in range(lanes):
                PUU[q, j] += U[r, j] * U[c, j]
            q += 1


@njit(cache=True)
def flush(PU, PUU, sums, i0, n_valid, b):
    """Add the partial sums of lanes j < n_valid to batch b of the totals of trajectories i0 + j; zero them."""
    sum_u, sum_uu = sums
    d = PU.shape[0]
    for j in range(n_valid):
        i = i0 + j
        q = 0
        for r in range(d):
            sum_u[i, b, r] += PU[r, j]
            PU[r, j] = 0.0
            for c in range(r, d):
                sum_uu[i, b, r, c] += PUU[q, j]
                PUU[q, j] = 0.0
                q += 1


@njit(cache=True)
def symmetrize(sum_uu, i0, n_valid):
    """Copy the upper triangle of each batch's sum of u uᵀ to its lower triangle (trajectories i0 + j)."""
    d = sum_uu.shape[2]
    for j in range(n_valid):
        for b in range(sum_uu.shape[1]):
            for r in range(d):
                for c in range(r + 1, d):
                    sum_uu[i0 + j, b, c, r] = sum_uu[i0 + j, b, r, c]


_TILE = 16  # lanes of the statistics accumulator: trajectories kS + 16 m + j go to lane j


def block_outer_moments(snapshots, block_size):
    """Per statistics block of ``block_size`` consecutive trajectories (local index i: block i // block_size,
    the first block starting at i = 0): sums over its trajectories of x = u(t) u(t)ᵀ and of x² (elementwise)
    at every snapshot t (the ensemble moments of V(t) = E[u uᵀ], docs/physics.md "The stochastic picture").

    snapshots (n_traj, n_t, d), any strides (the stepper's are a view of its time-major array, read without a
    copy) → (sum (k, n_t, q), sum_sq (k, n_t, q)), k = ceil(n_traj / block_size), packed:
    only the upper triangle of x (it is symmetric), q = d (d + 1) / 2 entries (r, c ≥ r) row-major. Order:
    trajectory kS + 16 m + j is added to lane j's accumulator (tiles m in order; missing trajectories of a
    partial tile add +0), and the 16 lanes are summed in lane order at the end of the block; a block of at
    most 16 has a lane per trajectory, whose sums in lane order are the sums in trajectory order. An order
    fixed by the index within the block: the sums are independent of the unit, the thread and the number of
    blocks. Blocks run in threads (``in_threads``).
    """
    n, n_t, d = snapshots.shape
    k = (n + block_size - 1) // block_size
    out = np.zeros((k, n_t, d * (d + 1) // 2))
    out_sq = np.zeros_like(out)
    by_time = np.ascontiguousarray(snapshots.transpose(1, 2, 0))  # the stepper's layout: no copy
    if block_size <= _TILE:
        in_threads(_outer_moments_small, k, by_time, np.int64(block_size), out, out_sq)
    else:
        in_threads(outer_moments, k, by_time, np.int64(block_size), np.int64(_TILE), out, out_sq)
    return out, out_sq


def sums_larger_than_samples(block_size, d):
    """Whether a block's sums of x = u uᵀ and x² (2 · d (d + 1) / 2 numbers a snapshot) outweigh its samples
    (block_size · d): then a unit hands over its snapshots, folded at once by ``fold_outer_moments``, rather
    than its blocks' sums. Only blocks of at most _TILE (summed lane by lane as ``_outer_moments_small``)."""
    return block_size <= min(d + 1, _TILE)


def fold_outer_moments(snapshots, first, block_size, total, total_sq):
    """Add the sums of x = u uᵀ and x² of the blocks of ``block_size`` (≤ _TILE) snapshots starting at
    trajectory ``first`` to ``total`` and ``total_sq`` (n_t, q), packed as ``block_outer_moments``: the same
    operations, bit for bit, as ``total += sum; total_sq += sum_sq`` of that block's ``block_outer_moments``,
    without the (k, n_t, q) sums in memory. snapshots: time-major (n_t, d, n), the stepper's layout. Times run
    in threads (each time's sums are its own)."""
    n_t = snapshots.shape[0]
    stop = min(snapshots.shape[2], first + block_size)
    in_threads(_fold_outer_moments, n_t, snapshots, np.int64(first), np.int64(stop), total, total_sq)


def block_moments(x, block_size):
    """Per statistics block of ``block_size`` consecutive rows of x (n, m) (block i // block_size): the sums of
    x and of x² (elementwise) over its rows, added in row order → (sum (k, m), sum_sq (k, m)),
    k = ceil(n / block_size). Blocks run in threads; each block's order depends only on its rows."""
    n, m = x.shape
    k = (n + block_size - 1) // block_size
    out = np.zeros((k, m))
    out_sq = np.zeros((k, m))
    in_threads(_moments, k, x, np.int64(block_size), out, out_sq)
    return out, out_sq


def in_threads(kernel, n_blocks, *args):
    """``kernel(*args, first_block, stop_block)`` over all blocks on ``numba.get_num_threads()`` threads (the
    kernels release the GIL; threads rather than ``parallel=True``, whose compile costs seconds). A block's
    outputs are its own rows, so the split cannot change a bit of them. The pool lives as long as the
    process (starting threads for every call measured slower)."""
    threads = min(numba.get_num_threads(), n_blocks)
    if threads <= 1:
        kernel(*args, np.int64(0), np.int64(n_blocks))
        return
    edges = np.linspace(0, n_blocks, 4 * threads + 1).astype(np.int64)
    ranges = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    list(_pool(threads).map(lambda r: kernel(*args, r[0], r[1]), ranges))  # re-raises


def thread_map(fn, items) -> list:
    """[fn(x) for x in items] on ``numba.get_num_threads()`` threads of the shared pool, in order (for work
    that releases the GIL: NumPy on large arrays, ``nogil`` kernels, file reads)."""
    items = list(items)
    threads = min(numba.get_num_threads(), len(items))
    return [fn(x) for x in items] if threads <= 1 else list(_pool(threads).map(fn, items))


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="sde_com")
    return _POOLS[threads]


@njit(cache=True, nogil=True)
def outer_moments(by_time, block_size, lanes, out, out_sq, first_block, stop_block):
    """``block_outer_moments`` of blocks [first_block, stop_block) of the time-major snapshots by_time
    (n_t, d, n) with ``lanes`` (= _TILE) lanes, a run-time value: a compile-time 16 is fully unrolled before
    LLVM's loop vectorizer sees the lane loops, which then stay scalar (measured 2.4× slower)."""
    n_t, d, n = by_time.shape
    n_q = d * (d + 1) // 2
    U = np.zeros((d, lanes))
    acc = np.empty((n_q, lanes))
    acc_sq = np.empty((n_q, lanes))
    for b in range(first_block, stop_block):
        i_lo = b * block_size
        i_hi = min(n, i_lo + block_size)
        for t in range(n_t):
            acc[:] = 0.0
            acc_sq[:] = 0.0
            for i0 in range(i_lo, i_hi, lanes):
                n_valid = min(lanes, i_hi - i0)
                for r in range(d):
                    for j in range(n_valid):
                        U[r, j] = by_time[t, r, i0 + j]
                    for j in range(n_valid, lanes):
                        U[r, j] = 0.0
                q = 0
                for r in range(d):
                    for c in range(r, d):
                        for j in range(lanes):
                            x = U[r, j] * U[c, j]
                            acc[q, j] += x
                            acc_sq[q, j] += x * x
                        q += 1
            for q in range(n_q):
                s = 0.0
                s_sq = 0.0
                for j in range(lanes):
                    s += acc[q, j]
                    s_sq += acc_sq[q, j]
                out[b, t, q] = s
                out_sq[b, t, q] = s_sq


@njit(cache=True, nogil=True)
def _outer_moments_small(by_time, block_size, out, out_sq, first_block, stop_block):
    """``block_outer_moments`` of blocks [first_block, stop_block) of at most _TILE trajectories, each in its
    own lane: the lanes' sums in lane order are the trajectories summed in order, added here directly (the
    tile loop's zeroing and reduction cost more than the products when there are a few lanes)."""
    n_t, d, n = by_time.shape
    for b in range(first_block, stop_block):
        for t in range(n_t):
            q = 0
            for r in range(d):
                for c in range(r, d):
                    s = 0.0
                    s_sq = 0.0
                    for i in range(b * block_size, min(n, (b + 1) * block_size)):
                        x = by_time[t, r, i] * by_time[t, c, i]
                        s += x
                        s_sq += x * x
                    out[b, t, q] = s
                    out_sq[b, t, q] = s_sq
                    q += 1


@njit(cache=True, nogil=True)
def _fold_outer_moments(by_time, i_lo, i_hi, total, total_sq, t_first, t_stop):
    """``fold_outer_moments`` of trajectories [i_lo, i_hi) at times [t_first, t_stop): each sum in
    ``_outer_moments_small``'s order, then added to the total."""
    d = by_time.shape[1]
    for t in range(t_first, t_stop):
        q = 0
        for r in range(d):
            for c in range(r, d):
                s = 0.0
                s_sq = 0.0
                for i in range(i_lo, i_hi):
                    x = by_time[t, r, i] * by_time[t, c, i]
                    s += x
                    s_sq += x * x
                total[t, q] += s
                total_sq[t, q] += s_sq
                q += 1


@njit(cache=True, nogil=True)
def _moments(x, block_size, out, out_sq, first_block, stop_block):
    """``block_moments`` of blocks [first_block, stop_block)."""
    n, m = x.shape
    for b in range(first_block, stop_block):
        for i in range(b * block_size, min(n, (b + 1) * block_size)):
            for e in range(m):
                v = x[i, e]
                out[b, e] += v
                out_sq[b, e] += v * v

