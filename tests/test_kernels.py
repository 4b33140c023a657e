"""Tests of sde_com.kernels: Philox known answers, normal quality, reproducibility, statistics, strong order.

Statistical thresholds come from the estimators' own standard errors with a Bonferroni correction so that
a correct kernel fails a test with probability about 1e-3 for a random seed; seeds are fixed.
"""

import numba
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from sde_com import kernels

FAIL_PROBABILITY = 1e-3  # per statistical test, for a correct implementation and a random seed
NO_SNAPSHOTS = np.zeros(0, dtype=np.int64)
IU = np.triu_indices(6)


def _system():
    """Three coupled damped oscillators in 6-D (slowest decay rate 0.2) and a correlated diffusion D."""
    A = np.zeros((6, 6))
    for k, (omega, gamma) in enumerate([(1.0, 0.2), (1.3, 0.3), (0.7, 0.25)]):
        i = 2 * k
        A[i, i] = A[i + 1, i + 1] = -gamma
        A[i, i + 1], A[i + 1, i] = omega, -omega
    A[0, 3] = A[2, 1] = 0.1
    A[2, 5] = A[4, 3] = 0.08
    D = np.diag([0.2, 0.2, 0.3, 0.3, 1.0, 1.0])
    D[0, 1] = D[1, 0] = 0.05
    D[4, 5] = D[5, 4] = 0.2
    return A, D


def _euler_maruyama(A, D, dt):
    return np.eye(6) + A * dt, np.linalg.cholesky(D * dt)


def _exact(A, D, dt):
    """Phi = expm(A dt) and chol(Q_dt) from one expm of [[-A, D], [0, A^T]] dt (Van Loan 1978)."""
    E = scipy.linalg.expm(np.block([[-A, D], [np.zeros((6, 6)), A.T]]) * dt)
    Phi = E[6:, 6:].T
    Q = Phi @ E[:6, 6:]
    return np.ascontiguousarray(Phi), np.linalg.cholesky(0.5 * (Q + Q.T))


def _z_scores(sum_u, sum_uu, n_avg, V):
    """z of the trajectory-mean of time averages of (u, u u^T upper triangle) against (0, V).

    Each trajectory starts in its own stationary state and has its own stream, so the per-trajectory
    averages are independent; the standard error is their sample std / sqrt(n_traj). The threshold is the
    two-sided Student-t quantile at FAIL_PROBABILITY / n_entries (Bonferroni over the 27 entries).
    """
    est = np.hstack([sum_u / n_avg, (sum_uu / n_avg)[:, IU[0], IU[1]]])
    target = np.concatenate([np.zeros(6), V[IU]])
    n = est.shape[0]
    z = (est.mean(axis=0) - target) / (est.std(axis=0, ddof=1) / np.sqrt(n))
    threshold = scipy.stats.t.isf(FAIL_PROBABILITY / (2 * z.size), df=n - 1)
    return z, threshold


def _stationary_run(F, L, V, seed, n_traj, n_steps):
    initial = kernels.sample_gaussian(np.linalg.cholesky(V), seed, 0, n_traj, 1)
    sum_u, sum_uu, n_avg, *_ = kernels.run_ensemble(F, L, initial, seed, 0, n_steps, 0, NO_SNAPSHOTS, 0, 1)
    return _z_scores(sum_u, sum_uu, n_avg, V)


def _small_run(seed=11, first=0, n_traj=100):
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    initial = kernels.sample_gaussian(np.eye(6), seed, first, n_traj, 1)
    snaps = np.array([0, 250, 250, 500], dtype=np.int64)
    return kernels.run_ensemble(F, L, initial, seed, first, 500, 100, snaps, 5, 7)


def _assert_runs_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


# --- Philox4x32-10 and normals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [  # Random123 kat_vectors, philox4x32_10
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(x) for x in kernels.philox4x32(*counter, *key)) == expected


def test_uniform53_is_never_zero_and_at_most_one():
    assert kernels.uniform53(np.uint64(0), np.uint64(0)) == 2.0**-53
    assert kernels.uniform53(np.uint64(0xFFFFFFFF), np.uint64(0xFFFFFFFF)) == 1.0


def test_normals_moments_and_distribution():
    n = 1_000_000
    z = kernels.standard_normals(2024, 0, n)
    # Standard errors of the sample mean, variance and fourth moment of N(0, 1): sqrt(1/n), sqrt(2/n),
    # sqrt((105 - 9)/n). |z| < 5 fails with probability ~6e-7 each.
    assert abs(z.mean()) / np.sqrt(1 / n) < 5
    assert abs(z.var() - 1) / np.sqrt(2 / n) < 5
    assert abs(np.mean(z**4) - 3) / np.sqrt(96 / n) < 5
    # Under H0 the KS p-value is uniform: p < FAIL_PROBABILITY happens with that probability.
    assert scipy.stats.kstest(z, "norm").pvalue > FAIL_PROBABILITY


def test_streams_uncorrelated():
    # A sample correlation of independent streams is ~N(0, 1/n): |r| sqrt(n) < 5 fails w.p. ~6e-7 each.
    n = 200_000
    z0, z1 = kernels.standard_normals(7, 0, n), kernels.standard_normals(7, 1, n)
    other_seed = kernels.standard_normals(8, 0, n)
    init = kernels.sample_gaussian(np.eye(6), 7, 0, n // 6, 1).ravel()
    pairs = [
        (z0, z1),  # adjacent trajectories
        (z0, other_seed),  # adjacent seeds
        (z0[:-1], z0[1:]),  # lag 1 inside a stream
        (z0[0::2], z0[1::2]),  # cosine and sine of one Box-Muller pair
        (init, z0[: init.size]),  # initial-state stream against the stepping stream of the same trajectory
    ]
    for a, b in pairs:
        assert abs(np.corrcoef(a, b)[0, 1]) * np.sqrt(a.size) < 5


# --- reproducibility and bookkeeping -------------------------------------------------------------------


def test_same_seed_is_bitwise_identical_and_other_seed_differs():
    _assert_runs_identical(_small_run(), _small_run())
    assert not np.array_equal(_small_run()[0], _small_run(seed=12)[0])


def test_thread_count_does_not_change_results():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _small_run()
        numba.set_num_threads(2)
        two = _small_run()
    finally:
        numba.set_num_threads(previous)
    _assert_runs_identical(one, two)


def test_chunked_calls_equal_one_call():
    whole = _small_run()
    head, tail = _small_run(n_traj=37), _small_run(first=37, n_traj=63)
    for k in (0, 1, 3):  # sum_u, sum_uu, snapshots
        assert np.array_equal(whole[k], np.concatenate([head[k], tail[k]]))
    assert whole[2] == head[2] == tail[2] == 400
    _assert_runs_identical(whole[4:], head[4:])  # traces of the first 5 trajectories


def test_outputs_follow_the_recursion_and_the_stream():
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    seed, first, n_steps, burn_in = 3, 5, 3000, 700  # > 1024 summed states: crosses a partial-sum flush
    initial = kernels.sample_gaussian(np.eye(6), seed, first, 2, 1)
    snaps = np.array([0, 1, 1500, 3000], dtype=np.int64)
    sum_u, sum_uu, n_avg, snapshots, traces, noises = kernels.run_ensemble(
        F, L, initial, seed, first, n_steps, burn_in, snaps, 1, 1
    )
    path, noise = traces[0], noises[0]
    xi = kernels.standard_normals(seed, first, 6 * n_steps).reshape(n_steps, 6)
    assert n_avg == n_steps - burn_in and path.shape == (n_steps + 1, 6)
    assert np.array_equal(path[0], initial[0]) and np.array_equal(noise[0], np.zeros(6))
    assert np.array_equal(snapshots[0], path[snaps])
    np.testing.assert_allclose(noise[1:], xi @ L.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(path[1:], path[:-1] @ F.T + noise[1:], rtol=1e-12, atol=1e-13)
    kept = path[burn_in + 1 :]
    np.testing.assert_allclose(sum_u[0], kept.sum(axis=0), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(sum_uu[0], kept.T @ kept, rtol=1e-11, atol=1e-11)

    n_batches = 7
    bsum_u, bsum_uu, batch_len = kernels.run_batch_means(F, L, initial, seed, first, n_steps, burn_in, 7)
    assert batch_len == (n_steps - burn_in) // n_batches
    batches = kept[: n_batches * batch_len].reshape(n_batches, batch_len, 6)
    np.testing.assert_allclose(bsum_u[0], batches.sum(axis=1), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(bsum_uu[0], np.einsum("bni,bnj->bij", batches, batches), rtol=1e-11, atol=1e-11)


# --- statistics ----------------------------------------------------------------------------------------


def test_euler_maruyama_stationary_covariance_matches_discrete_lyapunov():
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    V_dt = scipy.linalg.solve_discrete_lyapunov(F, L @ L.T)
    # 256 trajectories of 20000 steps (T = 1000, 200 decay times of the slowest mode), started stationary.
    z, threshold = _stationary_run(F, L, V_dt, 101, 256, 20_000)
    assert np.abs(z).max() < threshold
    # Power: twice the noise covariance doubles V; the same test must reject it.
    z_wrong, _ = _stationary_run(F, L * np.sqrt(2), V_dt, 101, 256, 20_000)
    assert np.abs(z_wrong).max() > threshold
    # Resolution: the O(dt) bias of EM (V_dt differs from the continuous V by up to 5 %) is detected.
    z_continuous, _ = _stationary_run(F, L, scipy.linalg.solve_continuous_lyapunov(A, -D), 101, 256, 20_000)
    assert np.abs(z_continuous).max() > threshold


def test_exact_recursion_reproduces_continuous_lyapunov_at_large_dt():
    A, D = _system()
    dt = 0.5
    assert np.abs(np.linalg.eigvals(np.eye(6) + A * dt)).max() > 1  # Euler-Maruyama would diverge here
    Phi, L = _exact(A, D, dt)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    z, threshold = _stationary_run(Phi, L, V, 202, 256, 4_000)
    assert np.abs(z).max() < threshold


def test_snapshots_follow_the_discrete_moment_recursion():
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    V0 = np.diag([0.5, 0.5, 0.5, 0.5, 3.5, 3.5])  # vacuum optics, thermal mechanics
    steps = np.array([0, 20, 100], dtype=np.int64)
    n_traj = 20_000
    initial = kernels.sample_gaussian(np.linalg.cholesky(V0), 303, 0, n_traj, 1)
    snapshots = kernels.run_ensemble(F, L, initial, 303, 0, 100, 100, steps, 0, 1)[3]
    assert np.array_equal(snapshots[:, 0], initial)
    Vn, V_of_step = V0, {}
    for n in range(101):
        V_of_step[n] = Vn
        Vn = F @ Vn @ F.T + L @ L.T
    # For zero-mean Gaussian u, Var(u_i u_j) = V_ii V_jj + V_ij^2 (Isserlis): the exact standard error of
    # the ensemble mean of u_i u_j. Bonferroni over 21 entries x 3 snapshots.
    threshold = scipy.stats.norm.isf(FAIL_PROBABILITY / (2 * 21 * len(steps)))
    for k, n in enumerate(steps):
        V = V_of_step[n]
        est = np.einsum("ti,tj->ij", snapshots[:, k], snapshots[:, k]) / n_traj
        se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V**2) / n_traj)
        assert np.abs((est - V) / se)[IU].max() < threshold


def _em_endpoints(normals, A, B, T, n_fine, ratio):
    """u(T) of Euler-Maruyama with dt = ratio T / n_fine, one path per row of ``normals`` (fine xi's).

    Coarse increments are sums of ``ratio`` fine ones, dW = B sqrt(dt_fine) xi: all dt share the path.
    """
    n_paths = normals.shape[0]
    dt_fine = T / n_fine
    dW = normals.reshape(n_paths, n_fine // ratio, ratio, 6).sum(axis=2) @ B.T * np.sqrt(dt_fine)
    u = np.ones((n_paths, 6))
    for increment in dW.transpose(1, 0, 2):
        u = u + u @ A.T * (ratio * dt_fine) + increment
    return u


def test_euler_maruyama_strong_order_one():
    """EM driven by the kernel's stepping streams (standard_normals; the recursion test shows the kernel's
    increments are L times exactly these), in numpy, because the strong order needs one Brownian path at
    several dt. Reference: EM at dt_fine = T / 2048; coarse dt >= 16 dt_fine, so the reference's own
    O(dt_fine) error moves the fitted slope by a few hundredths at most.
    Band 0.8-1.2: additive noise makes EM a Milstein scheme, strong order 1; with 256 paths each mean error
    carries ~5 % noise (spread of |e| / sqrt(256)), ~0.03 in a slope fitted over a factor 16 in dt.
    Order 0.5, or 0 for the unrelated path below, falls outside.
    """
    A, D = _system()
    B = np.linalg.cholesky(D)
    T, n_fine, n_paths = 1.0, 2048, 256
    ratios = [16, 32, 64, 128, 256]  # dt = T/128 .. T/8
    log_dt = np.log(np.array(ratios) * T / n_fine)
    normals = np.array([kernels.standard_normals(404, k, 6 * n_fine) for k in range(n_paths)])
    reference = _em_endpoints(normals, A, B, T, n_fine, 1)

    def slope(paths):
        errors = [np.linalg.norm(_em_endpoints(paths, A, B, T, n_fine, r) - reference, axis=1).mean() for r in ratios]
        return np.polyfit(log_dt, np.log(errors), 1)[0]

    assert 0.8 < slope(normals) < 1.2
    # Power: coarse runs on another Brownian path do not converge to the reference at all.
    other = np.array([kernels.standard_normals(405, k, 6 * n_fine) for k in range(n_paths)])
    assert not 0.8 < slope(other) < 1.2
