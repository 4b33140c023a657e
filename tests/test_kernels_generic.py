"""The linear-SDE kernels in any even dimension d = 2N: the loop kernel equals the unrolled 6-D kernel bit for
bit, follows the recursion and the stream layout, is reproducible across threads and chunks, and its ensemble
covariance agrees with the discrete Lyapunov solution within error bars.

Statistical thresholds come from the estimator's own standard error with a Bonferroni correction over the
d(d+1)/2 entries, so that a correct kernel fails with probability FAMILY_WISE for a random seed; seeds are fixed.
"""

import numba
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from sde_com.kernels import ensemble as kernels
from sde_com.random import normals as rng_normals

FAMILY_WISE = 1e-3  # probability that a correct kernel fails one covariance test (for a random seed)
NO_SNAPSHOTS = np.zeros(0, dtype=np.int64)


def _stable_system(d, seed):
    """A random drift A whose eigenvalues have real parts <= -0.3, and a random positive-definite D."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(d, d))
    A = M - (np.linalg.eigvals(M).real.max() + 0.3) * np.eye(d)
    B = rng.normal(size=(d, d))
    return A, B @ B.T / d + 0.1 * np.eye(d)


def _exact_maps(A, D, dt):
    """F = expm(A dt) and L with L L^T = Q_dt = int_0^dt e^{As} D e^{A^T s} ds (Van Loan's block exponential)."""
    d = A.shape[0]
    block = scipy.linalg.expm(np.block([[-A, D], [np.zeros((d, d)), A.T]]) * dt)
    F = block[d:, d:].T
    Q = F @ block[:d, d:]
    return F, np.linalg.cholesky(0.5 * (Q + Q.T))


def _generic(F, L, initial, seed, first, n_steps, burn_in, snaps, trace_count, trace_every):
    """run_ensemble through the loop kernel whatever d is (run_ensemble picks the unrolled one at d = 6)."""
    original = kernels._run
    kernels._run = kernels._run_blocks
    try:
        return kernels.run_ensemble(F, L, initial, seed, first, n_steps, burn_in, snaps, trace_count, trace_every)
    finally:
        kernels._run = original


def test_loop_kernel_equals_unrolled_kernel_at_d6_bitwise():
    """Both compute each entry of L xi and F u in the same order, ((M[r,0] v[0] + M[r,1] v[1]) + ...), then
    (F u) + (L xi), with the same partial-sum flushes: the same bits, not merely close. L[:, 4] = 0 exercises
    the skipped component; 1300 summed states cross a flush; 20 trajectories leave a padded second block."""
    A, D = _stable_system(6, 1)
    F, L = _exact_maps(A, D, 0.1)
    L[:, 4] = 0.0
    initial = rng_normals.sample_gaussian(np.eye(6), 5, 0, 20, 1)
    snaps = np.array([0, 7, 1500], dtype=np.int64)
    unrolled = kernels.run_ensemble(F, L, initial, 5, 0, 1500, 200, snaps, 3, 5)
    loops = _generic(F, L, initial, 5, 0, 1500, 200, snaps, 3, 5)
    for x, y in zip(unrolled, loops, strict=True):
        assert np.array_equal(x, y)


def _run_d4(first=0, n_traj=40):
    A, D = _stable_system(4, 2)
    F, L = _exact_maps(A, D, 0.1)
    initial = rng_normals.sample_gaussian(np.eye(4), 9, first, n_traj, 1)
    return kernels.run_ensemble(F, L, initial, 9, first, 1200, 100, np.array([0, 600, 1200]), min(3, n_traj), 4)


def test_d4_recursion_stream_layout_and_shapes():
    """u_{n+1} = F u_n + L xi_n with xi_n = normals 4n .. 4n + 3 of the stepping stream; outputs are (.., 4)."""
    A, D = _stable_system(4, 2)
    F, L = _exact_maps(A, D, 0.1)
    sum_u, sum_uu, n_avg, snapshots, traces, noises = _run_d4()
    assert sum_u.shape == (40, 4) and sum_uu.shape == (40, 4, 4) and snapshots.shape == (40, 3, 4)
    assert traces.shape == noises.shape == (3, 301, 4) and n_avg == 1100
    assert np.array_equal(sum_uu, sum_uu.transpose(0, 2, 1))
    xi = rng_normals.standard_normals(9, 1, 4 * 1200).reshape(1200, 4)[3::4]  # steps 4, 8, ..: the trace steps
    path = traces[1]
    # relative 1e-12: a few roundings of O(1) sums of 4 products, far above 2**-52 and far below any layout error
    np.testing.assert_allclose(noises[1, 1:], xi @ L.T, rtol=1e-12, atol=1e-13)
    assert np.array_equal(snapshots[1, 0], path[0]) and np.array_equal(snapshots[1, 2], path[-1])
    batch_u, batch_uu, batch_len = kernels.run_batch_means(F, L, snapshots[:, 0], 9, 0, 1200, 100, 4)
    assert batch_len == 275 and batch_uu.shape == (40, 4, 4, 4)
    # the batches partition the 4 * 275 = 1100 summed states, so their sums add up to the whole sum; only the
    # grouping of the additions differs: 1100 terms give rounding <~ 1100 * 2**-53 ~ 1e-13 of the largest entry
    scale = np.abs(sum_uu).max()
    np.testing.assert_allclose(batch_uu.sum(axis=1), sum_uu, rtol=0, atol=1e-12 * scale)


def test_d4_bitwise_across_threads_and_chunks():
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run_d4()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _run_d4()
    finally:
        numba.set_num_threads(previous)
    for x, y in zip(one, two, strict=True):
        assert np.array_equal(x, y)
    head, tail = _run_d4(n_traj=17), _run_d4(first=17, n_traj=23)
    for k in (0, 1, 3):  # sum_u, sum_uu, snapshots
        assert np.array_equal(one[k], np.concatenate([head[k], tail[k]]))
    assert np.array_equal(one[4], head[4]) and np.array_equal(one[5], head[5])  # traces of trajectories 0 .. 2


def _covariance_zscores(F, L, V, n_traj, seed, n_steps=40):
    """z-scores of the ensemble covariance C = (1/n) sum u u^T at step n_steps against V, upper triangle.

    Trajectories start from N(0, V) and are independent, so each u u^T is an independent sample with mean V
    (if V is stationary) and, for Gaussian u, Var(u_a u_b) = V_aa V_bb + V_ab^2: the standard error of C_ab
    is sqrt((V_aa V_bb + V_ab^2) / n).
    """
    d = V.shape[0]
    initial = rng_normals.sample_gaussian(np.linalg.cholesky(V), seed, 0, n_traj, 1)
    snaps = kernels.run_ensemble(F, L, initial, seed, 0, n_steps, n_steps, np.array([n_steps]), 0, 1)[3][:, 0]
    C = snaps.T @ snaps / n_traj
    se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V**2) / n_traj)
    iu = np.triu_indices(d)
    return ((C - V) / se)[iu]


@pytest.mark.parametrize("d", [2, 4, 8])
def test_ensemble_covariance_matches_discrete_lyapunov(d):
    """V = F V F^T + L L^T (the exact scheme's stationary covariance) within Bonferroni-corrected z-scores;
    the same test with the noise variance doubled (L -> sqrt(2) L, stationary covariance 2 V) fails."""
    A, D = _stable_system(d, 10 + d)
    F, L = _exact_maps(A, D, 0.25)
    V = scipy.linalg.solve_discrete_lyapunov(F, L @ L.T)
    n_entries = d * (d + 1) // 2
    z_max = scipy.stats.norm.isf(FAMILY_WISE / (2 * n_entries))  # two-sided, Bonferroni over the entries
    n_traj = 4000
    z = _covariance_zscores(F, L, V, n_traj, 100 + d)
    assert np.abs(z).max() < z_max, (np.abs(z).max(), z_max)
    # doubled noise: after 40 steps C ~ 2 V - F^40 V F^40T, so the diagonal is off by ~V_aa: z ~ sqrt(n / 2) ~ 45
    z_wrong = _covariance_zscores(F, np.sqrt(2.0) * L, V, n_traj, 100 + d)
    assert np.abs(z_wrong).max() > z_max
