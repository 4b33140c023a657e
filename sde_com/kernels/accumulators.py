"""What the steppers keep of a block of trajectories: snapshots, traces, and sums of u and u uᵀ.

Arrays are per block of lanes: U, W (d, lanes) the states and noise increments, PU (d, lanes) and PUU
(d (d + 1) / 2, lanes) the partial sums of u and of the upper triangle of u uᵀ (row-major). Partial sums are
added to the totals every FLUSH states and at the end of each batch, which bounds the rounding growth of
the totals; every lane's numbers are added in the same order whatever the block, so the totals are bitwise
independent of the lane, the block and the thread.

``record = (snapshot_steps, snapshots, traces, noises)`` and ``sums = (sum_u, sum_uu)`` are the stepper's
outputs, written in place (shapes in ``sde_com.kernels.ensemble``).
"""

from numba import njit

FLUSH = 1024  # partial sums are added to the totals every FLUSH states (limits rounding growth)


@njit(cache=True)
def record_state(n, U, W, i0, n_valid, n_traced, js, trace_every, record):
    """Write state n of the block's lanes to the snapshots (if n is a snapshot step) and the traces and
    noises (if n is a trace step); returns the index of the next snapshot step."""
    snapshot_steps, snapshots, traces, noises = record
    d = U.shape[0]
    while js < snapshot_steps.shape[0] and snapshot_steps[js] == n:
        for j in range(n_valid):
            for r in range(d):
                snapshots[i0 + j, js, r] = U[r, j]
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


@njit(cache=True)
def accumulate_outer_products(snapshots, first, n_total, n_groups, total, total_sq, group_sum, group_count):
    """Add the snapshots u(t) of trajectories first, first + 1, … to running sums of u uᵀ, of (u uᵀ)²
    (elementwise) and of u uᵀ per trajectory group (group of trajectory i: i·n_groups // n_total).

    Trajectory by trajectory in index order, so feeding blocks in order gives the same bits for any
    block size; memory is that of the sums, not of the ensemble. Any dimension d = snapshots.shape[2].
    """
    n_t, d = snapshots.shape[1], snapshots.shape[2]
    for i in range(snapshots.shape[0]):
        g = ((first + i) * n_groups) // n_total
        group_count[g] += 1
        for t in range(n_t):
            for a in range(d):
                for b in range(d):
                    x = snapshots[i, t, a] * snapshots[i, t, b]
                    total[t, a, b] += x
                    total_sq[t, a, b] += x * x
                    group_sum[g, t, a, b] += x
