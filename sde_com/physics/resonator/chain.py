"""The fast steady-state chain over many operating points: branches → A → stability → V → E_N.

One serial numba kernel on plain float arrays (no validation: ``sweep`` validates), run by ``run_chain`` on
blocks of points in threads (the kernel releases the GIL). Threads rather than ``parallel=True``: numba's
parfors pipeline made the first-run compile ~2 s longer for the same run speed. It composes the same njit
functions the per-point reference path uses (Eqs. (6), (7), (11)–(13)); the tests hold the two paths
together. Every point is independent, so the results do not depend on the blocks or the thread count.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from sde_com.physics.gaussian import logneg_from_blocks
from sde_com.physics.linear import lyapunov_covariance, routh_hurwitz_stable
from sde_com.physics.resonator.drift import fill_drift_matrix
from sde_com.physics.resonator.steady import MAX_BRANCHES, mean_fields, real_polynomial_roots, steady_polynomial

# Pairs (rows of the 6×6 covariance) whose E_N the chain reports: (U, mech), (V, mech), (U, V).
PAIR_ROWS = np.array([[0, 1, 4, 5], [2, 3, 4, 5], [0, 1, 2, 3]], dtype=np.int64)
# Points per thread task: a few ms of work, so that a task's overhead (~50 µs) stays below ~1 %, and
# enough tasks to balance the cost of multi-branch points between threads.
BLOCK_POINTS = 2048


@njit(cache=True, nogil=True)
def steady_chain(kappa, delta_u, delta_v, J, G0, epsilon, omega_m, gamma_m, n_thermal, store_cov,
                 n_branches, shift, alpha_u, alpha_v, stable, logneg, fluct, cov):
    """Run the whole steady-state chain for every point i (all inputs shape (N,), rates in rad/s), serially.

    Outputs (preallocated, NaN-filled by the caller where a branch does not exist):
        n_branches (N,) int: number of real roots of Eq. (7);
        shift (N, B): y = G₀q_s/κ per branch, ascending;  alpha_u, alpha_v (N, B) complex: Eq. (7);
        stable (N, B) bool: every eigenvalue of A (Eq. (6)) has Re < 0, by the Routh–Hurwitz criterion;
        logneg (N, B, 3): E_N of the pairs (U, m), (V, m), (U, V) (Eqs. (12)–(13)), NaN where unstable;
        fluct (N, B, 2): fluctuation numbers ⟨δa†δa⟩ = (V_xx + V_pp − 1)/2 of U and V (the linearization
            check, ``gaussian.fluctuation_numbers``; always, as a sweep need not keep V), NaN where unstable;
        cov (N, B, 6, 6): Lyapunov V of Eq. (11) if store_cov, NaN where unstable.
    """
    n_points = kappa.shape[0]
    for i in range(n_points):
        wm = omega_m[i]
        k = G0[i] ** 2 * epsilon[i] ** 2 / (wm * kappa[i] ** 3)
        d_u = delta_u[i] / kappa[i]
        d_v = delta_v[i] / kappa[i]
        j = J[i] / kappa[i]
        roots = np.empty(MAX_BRANCHES)
        nb = real_polynomial_roots(steady_polynomial(d_u, d_v, j, k), roots)  # the roots of Eq. (7)
        n_branches[i] = nb
        # everything below in units of ω_m: V is unchanged, the matrices are O(1)
        D = np.zeros((6, 6))
        for r in range(4):
            D[r, r] = kappa[i] / wm
        D[5, 5] = gamma_m[i] / wm * (2.0 * n_thermal[i] + 1.0)
        A = np.empty((6, 6))
        v4 = np.empty((4, 4))
        g = math.sqrt(2.0) * G0[i] / wm
        for b in range(nb):
            y = roots[b]
            a_u, a_v = mean_fields(d_u, d_v, j, y, epsilon[i] / kappa[i])
            shift[i, b] = y
            alpha_u[i, b] = a_u
            alpha_v[i, b] = a_v
            fill_drift_matrix(A, kappa[i] / wm, (delta_u[i] - kappa[i] * y) / wm,
                              (delta_v[i] - kappa[i] * y) / wm, J[i] / wm, g * a_u, g * a_v, 1.0,
                              gamma_m[i] / wm)
            stable[i, b] = routh_hurwitz_stable(A)
            if stable[i, b]:
                V = lyapunov_covariance(A, D)
                for p in range(PAIR_ROWS.shape[0]):
                    for r in range(4):
                        for c in range(4):
                            v4[r, c] = V[PAIR_ROWS[p, r], PAIR_ROWS[p, c]]
                    logneg[i, b, p] = logneg_from_blocks(v4)
                for m in range(2):
                    fluct[i, b, m] = 0.5 * (V[2 * m, 2 * m] + V[2 * m + 1, 2 * m + 1] - 1.0)
                if store_cov:  # element-wise: an array assignment compiles numba's shape-error path (~2 s)
                    for r in range(6):
                        for c in range(6):
                            cov[i, b, r, c] = V[r, c]


def run_chain(params: dict[str, np.ndarray], store_cov: bool = True) -> dict[str, np.ndarray]:
    """Allocate outputs and run ``steady_chain`` on flat parameter arrays (see its docstring for keys)."""
    n = params["kappa"].shape[0]
    B = MAX_BRANCHES
    out = dict(
        n_branches=np.zeros(n, dtype=np.int64),
        shift=np.full((n, B), np.nan),
        alpha_u=np.full((n, B), np.nan, dtype=np.complex128),
        alpha_v=np.full((n, B), np.nan, dtype=np.complex128),
        stable=np.zeros((n, B), dtype=np.bool_),
        logneg=np.full((n, B, 3), np.nan),
        fluct=np.full((n, B, 2), np.nan),
        cov=np.full((n, B, 6, 6) if store_cov else (1, 1, 6, 6), np.nan),
    )
    args = [np.ascontiguousarray(params[k], dtype=np.float64) for k in
            ("kappa", "delta_u", "delta_v", "J", "G0", "epsilon", "omega_m", "gamma_m", "n_thermal")]
    store_cov = bool(store_cov)  # one specialization (not np.bool_ beside bool)
    outputs = [out[k] for k in ("n_branches", "shift", "alpha_u", "alpha_v", "stable", "logneg", "fluct")]

    def block(start: int) -> None:  # points [start, start + BLOCK_POINTS): C-contiguous views, one signature
        part = slice(start, start + BLOCK_POINTS)
        steady_chain(*(a[part] for a in args), store_cov, *(o[part] for o in outputs),
                     out["cov"][part] if store_cov else out["cov"])

    starts = range(0, n, BLOCK_POINTS)
    threads = min(numba.get_num_threads(), len(starts)) if len(starts) > 1 else 1  # honours set_num_threads
    if threads == 1:
        steady_chain(*args, store_cov, *outputs, out["cov"])
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(block, starts))  # re-raises a block's exception
    if not store_cov:
        del out["cov"]
    return out


def compile_callees() -> None:
    """Compile (into the kernel cache) the kernels ``steady_chain`` calls, last called first, on arguments of the
    types it passes them: run in a second process while the first compiles the chain from its first call on,
    the two meet in the middle and the first run of a sweep waits less (``kernel_cache.compile_aside``)."""
    v4, A, D = np.eye(4), -np.eye(6), np.eye(6)  # C-contiguous float64, as the chain's np.empty/np.zeros
    logneg_from_blocks(v4)
    lyapunov_covariance(A, D)
    routh_hurwitz_stable(A)
    fill_drift_matrix(A, 1.0, 0.5, 0.5, 0.0, 0.1 + 0.1j, 0.0j, 1.0, 0.01)
