"""Generic linear maths of du = A u dt + dW, E[dW dWᵀ] = D dt, for any even dimension 2N.

Stability (characteristic polynomial, Routh–Hurwitz, growth rate), the Lyapunov covariance V of
A V + V Aᵀ + D = 0 (Eq. (11) of the paper), the moment solution V(t) (Van Loan), and the one-step maps of
the Euler–Maruyama and exact discretizations with their discrete covariances. Rates in rad/s (or any
consistent unit). The functions decorated with ``njit`` are plain array functions used by the fast sweep
kernel; ``scipy``-based ones beside them are the slow, obviously-right references the tests compare with.
A system's own drift and diffusion live with the system (``resonator.drift`` for the spinning resonator).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sde_com.kernels.covariance import propagate_covariances

# Stability ---------------------------------------------------------------------------------------


def max_growth_rate(A: np.ndarray) -> float:
    """Largest real part of the eigenvalues of A (rad/s); the point is stable iff it is < 0."""
    return float(np.max(np.linalg.eigvals(A).real))


@njit(cache=True)
def characteristic_polynomial(A):
    """Coefficients c (length n+1, c[0] = 1) of det(λI − A) = Σ c[i] λ^(n−i), by Faddeev–LeVerrier."""
    n = A.shape[0]
    c = np.zeros(n + 1)
    c[0] = 1.0
    M = np.zeros((n, n))
    AM = np.zeros((n, n))
    for k in range(1, n + 1):
        for i in range(n):
            M[i, i] += c[k - 1]
        tr = 0.0
        for i in range(n):
            for j in range(n):
                acc = 0.0
                for m in range(n):
                    acc += A[i, m] * M[m, j]
                AM[i, j] = acc
            tr += AM[i, i]
        c[k] = -tr / k
        M, AM = AM, M
    return c


@njit(cache=True)
def routh_hurwitz_stable(A):
    """Routh–Hurwitz criterion (ref. [59] of the paper): True iff every eigenvalue of A has Re < 0.

    Every coefficient of the characteristic polynomial and the whole first column of the Routh array must
    be positive. Scale A to O(1) entries (e.g. divide by ω_m) for a well-conditioned polynomial.
    """
    c = characteristic_polynomial(A)
    n = c.shape[0] - 1
    for i in range(n + 1):
        if not c[i] > 0.0:
            return False
    width = n // 2 + 2
    prev = np.zeros(width)
    cur = np.zeros(width)
    for i in range(width - 1):
        if 2 * i <= n:
            prev[i] = c[2 * i]
        if 2 * i + 1 <= n:
            cur[i] = c[2 * i + 1]
    for _ in range(n - 1):
        if not cur[0] > 0.0:
            return False
        head = prev[0]
        for i in range(width - 1):  # next Routh row, written over prev
            prev[i] = (cur[0] * prev[i + 1] - head * cur[i + 1]) / cur[0]
        prev[width - 1] = 0.0
        prev, cur = cur, prev
    return cur[0] > 0.0


# Lyapunov steady state ---------------------------------------------------------------------------


def lyapunov_covariance_reference(A: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Steady-state covariance V solving A V + V Aᵀ = −D (Eq. (11)) with scipy's Bartels–Stewart solver."""
    import scipy.linalg  # lazily: the references are not on the fast path (scipy.linalg ~0.15 s to import)

    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    return 0.5 * (V + V.T)


@njit(cache=True)
def _solve_in_place(M, rhs):
    """Gaussian elimination with partial pivoting; overwrites M and returns the solution in rhs."""
    n = rhs.shape[0]
    for col in range(n):
        piv = col
        big = abs(M[col, col])
        for r in range(col + 1, n):
            if abs(M[r, col]) > big:
                big = abs(M[r, col])
                piv = r
        if piv != col:
            for c in range(col, n):
                M[col, c], M[piv, c] = M[piv, c], M[col, c]
            rhs[col], rhs[piv] = rhs[piv], rhs[col]
        inv = 1.0 / M[col, col]
        for r in range(col + 1, n):
            f = M[r, col] * inv
            if f != 0.0:
                for c in range(col + 1, n):
                    M[r, c] -= f * M[col, c]
                rhs[r] -= f * rhs[col]
    for r in range(n - 1, -1, -1):
        acc = rhs[r]
        for c in range(r + 1, n):
            acc -= M[r, c] * rhs[c]
        rhs[r] = acc / M[r, r]
    return rhs


@njit(cache=True)
def lyapunov_covariance(A, D):
    """Steady-state covariance V of Eq. (11), A V + V Aᵀ = −D, for symmetric V.

    Solves the linear system for the n(n+1)/2 independent entries of V directly (n = 2N; 21 unknowns for n = 6),
    several times cheaper than Bartels–Stewart for one small matrix. Only meaningful where A is stable;
    scale A and D by the same rate (e.g. 1/ω_m) for conditioning: V is unchanged.
    """
    n = A.shape[0]
    m = n * (n + 1) // 2
    index = np.empty((n, n), dtype=np.int64)
    r = 0
    for i in range(n):
        for j in range(i, n):
            index[i, j] = r
            index[j, i] = r
            r += 1
    M = np.zeros((m, m))
    rhs = np.empty(m)
    for k in range(n):
        for kk in range(k, n):  # equation (k, kk): Σ_s A[k,s] V[s,kk] + V[k,s] A[kk,s] = −D[k,kk]
            row = index[k, kk]
            rhs[row] = -D[k, kk]
            for s in range(n):
                M[row, index[s, kk]] += A[k, s]
                M[row, index[k, s]] += A[kk, s]
    _solve_in_place(M, rhs)
    V = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            V[i, j] = rhs[index[i, j]]
    return V


def lyapunov_residual(A: np.ndarray, V: np.ndarray, D: np.ndarray) -> float:
    """Relative residual ‖AV + VAᵀ + D‖ / (2‖A‖‖V‖ + ‖D‖) of Eq. (11) (Frobenius norms)."""
    R = A @ V + V @ A.T + D
    scale = 2.0 * np.linalg.norm(A) * np.linalg.norm(V) + np.linalg.norm(D)
    return float(np.linalg.norm(R) / scale)


def noise_covariance(A: np.ndarray, D: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(Φ, Q) = (e^{At}, ∫₀ᵗ e^{As} D e^{Aᵀs} ds) for any A, stable or not.

    Van Loan (1978): expm([[−A, D], [0, Aᵀ]] τ) = [[·, Φ⁻¹Q], [0, Φᵀ]] on a short piece τ = t/2^k (for a
    long t the block e^{−Aτ} would overflow the cancellation), then doubling: Q(2τ) = Q(τ) + Φ(τ)Q(τ)Φ(τ)ᵀ.
    """
    n = A.shape[0]
    k = max(0, int(np.ceil(np.log2(max(np.linalg.norm(A, 1) * t, 1e-300) / 0.5))))
    tau = t / 2.0**k
    M = np.zeros((2 * n, 2 * n))
    M[:n, :n] = -A
    M[:n, n:] = D
    M[n:, n:] = A.T
    import scipy.linalg  # lazily (see lyapunov_covariance_reference)

    E = scipy.linalg.expm(M * tau)
    Phi = E[n:, n:].T
    Q = Phi @ E[:n, n:]
    for _ in range(k):
        Q = Q + Phi @ Q @ Phi.T
        Phi = Phi @ Phi
    return Phi, 0.5 * (Q + Q.T)


def moment_covariance(A: np.ndarray, D: np.ndarray, V0: np.ndarray, t: float) -> np.ndarray:
    """Covariance at time t from V(0) = V0, the exact solution of dV/dt = AV + VAᵀ + D (docs/physics.md,
    "The stochastic picture"): V(t) = e^{At} V0 e^{Aᵀt} + Q(t). For a stable A this equals
    e^{At}(V0 − V∞)e^{Aᵀt} + V∞ with V∞ of Eq. (11); it also holds where A is unstable.
    """
    Phi, Q = noise_covariance(A, D, t)
    V = Phi @ V0 @ Phi.T + Q
    return 0.5 * (V + V.T)


MOMENT_KERNEL_TIMES = 4096  # recorded times from which the recursion runs in its kernel (below: ~4 µs a time
# in NumPy, less than loading the compiled kernel, and a short transient's first run compiles nothing more)


def moment_covariances(A: np.ndarray, D: np.ndarray, V0: np.ndarray, steps: np.ndarray, dt: float) -> np.ndarray:
    """``moment_covariance`` at the times steps·dt (sorted integer ``steps`` ≥ 0), by the exact recursion
    V(t + τ) = Φ(τ) V(t) Φ(τ)ᵀ + Q(τ) from V(0) = V0 with (Φ, Q) of ``noise_covariance`` computed once per
    distinct gap τ: a long record of equally spaced times costs one matrix exponential, not one per time.
    From MOMENT_KERNEL_TIMES times on the recursion is a kernel (``kernels.covariance.propagate_covariances``,
    the same operations: 50,001 times in ~0.02 s against 0.2 s)."""
    steps = np.asarray(steps, dtype=np.int64)
    gaps = np.diff(steps, prepend=0)
    distinct, gap_index = np.unique(gaps, return_inverse=True)
    maps = [noise_covariance(A, D, gap * dt) if gap else (np.eye(len(A)), np.zeros_like(A)) for gap in distinct]
    Phi = np.array([m[0] for m in maps])
    PhiT = np.ascontiguousarray(Phi.transpose(0, 2, 1))
    Q = np.array([m[1] for m in maps])
    gap_index = np.where(gaps == 0, -1, gap_index).astype(np.int64)  # a repeated time keeps V (W = V)
    out = np.empty((len(steps), *V0.shape))
    V0 = np.array(V0, dtype=float)
    if len(steps) >= MOMENT_KERNEL_TIMES:
        propagate_covariances(Phi, PhiT, Q, V0, gap_index, out)
        return out
    V, PV, W = V0, np.empty_like(V0), V0.copy()
    for k, g in enumerate(gap_index.tolist()):  # W = Φ V Φᵀ + Q in place: a loop of tiny products
        if g >= 0:
            np.matmul(Phi[g], V, out=PV)
            np.matmul(PV, PhiT[g], out=W)
            W += Q[g]
        np.add(W, W.T, out=out[k])
        out[k] *= 0.5
        V = out[k]
    return out


def psd_sqrt(M: np.ndarray) -> np.ndarray:
    """The principal square root S = U diag(√w) Uᵀ of a positive semidefinite M = U diag(w) Uᵀ (S = Sᵀ ⪰ 0,
    S S = M; eigenvalues below zero, rounding, are taken as zero).

    The one factor of a covariance that every noise and initial state is drawn with (L in u ← F u + L ξ, C
    in u₀ = C z). It is unique, so it does not depend on the signs, or the rotation within a degenerate
    eigenspace, that an eigensolver picks for U: those depend on the CPU's BLAS kernels, and a factor
    U diag(√w) built from them drew other trajectories on another CPU (docs/reproducibility.md). A diagonal
    M gives diag(√M_kk) exactly.
    """
    M = np.asarray(M, dtype=float)
    if np.count_nonzero(M - np.diag(np.diag(M))) == 0:
        return np.diag(np.sqrt(np.clip(np.diag(M), 0.0, None)))
    w, U = np.linalg.eigh(0.5 * (M + M.T))
    S = (U * np.sqrt(np.clip(w, 0.0, None))) @ U.T
    return 0.5 * (S + S.T)


def euler_maruyama_step(A: np.ndarray, D: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, L) of the Euler–Maruyama recursion u ← F u + L ξ: F = I + A dt, L = √dt D^½ (``psd_sqrt``: any
    positive semidefinite D, diagonal or with correlated noises)."""
    return np.eye(A.shape[0]) + A * dt, np.sqrt(dt) * psd_sqrt(D)


def exact_step(A: np.ndarray, D: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, L) of the exact discretization u ← Φ u + L ξ, Φ = e^{A dt}, L = Q_dt^½ (Van Loan; ``psd_sqrt``, so a
    singular Q_dt, a noiseless direction, is fine)."""
    Phi, Q = noise_covariance(A, D, dt)
    return Phi, psd_sqrt(Q)


def discrete_stationary_covariance(F: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Stationary covariance V_dt = F V_dt Fᵀ + L Lᵀ of a recursion u ← F u + L ξ (discrete Lyapunov).

    For Euler–Maruyama this is the covariance the integrator really samples; it differs from V of
    Eq. (11) by O(dt) (docs/physics.md).
    """
    import scipy.linalg  # lazily (see lyapunov_covariance_reference)

    V = scipy.linalg.solve_discrete_lyapunov(F, L @ L.T)
    return 0.5 * (V + V.T)


def discrete_moment_covariance(F: np.ndarray, L: np.ndarray, V0: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Covariances V_n = F V_{n−1} Fᵀ + L Lᵀ of the recursion at the given (sorted) step numbers."""
    out = np.empty((len(steps), *V0.shape))
    V = np.array(V0, dtype=float)
    Q = L @ L.T
    n = 0
    for k, target in enumerate(steps):
        while n < target:
            V = F @ V @ F.T + Q
            n += 1
        out[k] = 0.5 * (V + V.T)
    return out


def euler_maruyama_max_dt(A: np.ndarray) -> float:
    """Largest dt with |1 + λ dt| < 1 for every eigenvalue λ of A (EM stability, docs/physics.md).

    For λ = −a + iω (a > 0) the condition is dt < 2a/(a² + ω²); 0 if some eigenvalue has Re λ ≥ 0.
    """
    lam = np.linalg.eigvals(A)
    if np.any(lam.real >= 0.0):
        return 0.0
    return float(np.min(-2.0 * lam.real / np.abs(lam) ** 2))
