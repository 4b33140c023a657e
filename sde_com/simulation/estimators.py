"""Estimators with error bars, from trajectory ensembles of u (docs/physics.md, "The stochastic picture").

Steady state: V from time averages of u uᵀ, its standard error from the spread over independent trajectories
(batch means over ``N_BATCHES`` consecutive batches when there is one trajectory). Transients: V(t) from
ensembles of u(t) uᵀ(t), streamed through running sums. E_N (Eq. (13)) and other nonlinear functions of V:
delete-one-group jackknife over ``N_JACKKNIFE_GROUPS`` groups fixed by trajectory index. Every estimate is
compared entry by entry with its reference by z-scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from sde_com.kernels.accumulators import accumulate_outer_products
from sde_com.physics.gaussian import logneg

N_JACKKNIFE_GROUPS = 32  # leave-one-group-out jackknife; more groups cost time, not accuracy
N_BATCHES = 32  # batch means for a single trajectory: each batch should span many relaxation times


def covariance_factor(V: np.ndarray) -> np.ndarray:
    """C with C Cᵀ = V for a positive semidefinite V (eigen-decomposition: singular V is fine)."""
    w, U = np.linalg.eigh(0.5 * (V + V.T))
    return U * np.sqrt(np.clip(w, 0.0, None))


def jackknife(values_by_group: np.ndarray, weights: np.ndarray, fn: Callable[[np.ndarray], float]):
    """Delete-one-group jackknife of fn(weighted mean) → (estimate on all data, standard error)."""
    total = np.tensordot(weights, values_by_group, axes=1) / weights.sum()
    full = fn(total)
    g = len(weights)
    if g < 2:
        return full, math.nan
    loo = np.array([fn((total * weights.sum() - weights[i] * values_by_group[i]) / (weights.sum() - weights[i]))
                    for i in range(g)])
    if not np.all(np.isfinite(loo)):
        return full, math.nan
    return full, float(math.sqrt((g - 1) / g * np.sum((loo - loo.mean()) ** 2)))


def jackknife_logneg_over_time(groups: np.ndarray, weights: np.ndarray,
                               entanglement: Callable[[np.ndarray], float] = logneg) -> tuple[np.ndarray, np.ndarray]:
    """``jackknife`` of E_N (Eq. (13); ``entanglement``: V → E_N of the reported pair, default the resonator's
    driven mode and mechanics) at each time of groups (group, time, d, d) → (E_N(t), error(t))."""
    n_t = groups.shape[1]
    en, en_err = np.empty(n_t), np.empty(n_t)
    for k in range(n_t):
        en[k], en_err[k] = jackknife(groups[:, k], weights, entanglement)
    return en, en_err


def group_means(per_traj: np.ndarray, n_groups: int = N_JACKKNIFE_GROUPS) -> tuple[np.ndarray, np.ndarray]:
    """Means of per-trajectory values over contiguous groups (fixed by trajectory index), with sizes."""
    n = per_traj.shape[0]
    g = min(n_groups, n)
    edges = np.linspace(0, n, g + 1).astype(int)
    means = np.stack([per_traj[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return means, np.diff(edges).astype(float)


def zscores(estimate, error, reference):
    """(z, max |z| over the upper triangle: the d(d+1)/2 independent entries of d×d matrices) of estimates
    against their reference, per leading index.

    Entries with zero error (e.g. the exactly known state at t = 0) carry no test: NaN, skipped in the max.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (estimate - reference) / error
    iu = np.triu_indices(z.shape[-1])
    zu = np.abs(z[..., iu[0], iu[1]])
    zu = np.where(np.isfinite(zu), zu, -np.inf).max(axis=-1)
    return z, np.where(np.isfinite(zu), zu, np.nan)


def steady_estimates(per_traj: np.ndarray, V_ref: np.ndarray, V_lyapunov: np.ndarray,
                     entanglement: Callable[[np.ndarray], float] = logneg) -> dict:
    """V from per-trajectory (or per-batch) time averages of u uᵀ (the mean of u is zero; per_traj: (n, d, d)),
    errors from their spread over the independent trajectories (batches); z-scores against the scheme's
    stationary ``V_ref`` and against the Lyapunov V of Eq. (11) (for Euler–Maruyama the latter shows the
    time-step bias). ``entanglement``: V → E_N of the reported pair (default: the resonator's ``logneg``)."""
    n = per_traj.shape[0]
    V_sim = per_traj.mean(axis=0)
    err = per_traj.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(per_traj.shape[1:], np.nan)
    z, zmax = zscores(V_sim, err, V_ref)
    _, zmax_continuous = zscores(V_sim, err, V_lyapunov)
    groups, weights = group_means(per_traj)
    en, en_err = jackknife(groups, weights, entanglement)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, zscore=z, zscore_max=zmax,
                zscore_max_continuous=zmax_continuous, logneg_sim=en, logneg_sim_err=en_err,
                logneg_ref=entanglement(V_ref), logneg=entanglement(V_lyapunov))


def snapshot_moments(blocks: Iterable[dict], n: int, n_t: int):
    """Running sums of u uᵀ over the snapshots (trajectory, time, d) of the blocks (in trajectory order; one at a
    time in memory) → (V(t), its standard error, group means of u uᵀ for the jackknife, group sizes)."""
    g = min(N_JACKKNIFE_GROUPS, n)
    total = total_sq = group_sum = None
    group_count = np.zeros(g)
    first = 0
    for block in blocks:
        snaps = block["snapshots"]
        if total is None:  # d from the first block's snapshots
            d = snaps.shape[-1]
            total, total_sq, group_sum = np.zeros((n_t, d, d)), np.zeros((n_t, d, d)), np.zeros((g, n_t, d, d))
        accumulate_outer_products(snaps, first, n, g, total, total_sq, group_sum, group_count)
        first += snaps.shape[0]
    V_sim = total / n
    with np.errstate(invalid="ignore"):
        var = np.clip(total_sq / n - V_sim**2, 0.0, None) * n / (n - 1) if n > 1 else np.full(V_sim.shape, np.nan)
    return V_sim, np.sqrt(var / n), group_sum / group_count[:, None, None, None], group_count


def transient_estimates(blocks: Iterable[dict], n: int, steps: np.ndarray, V_ref: np.ndarray,
                        V_moment: np.ndarray, entanglement: Callable[[np.ndarray], float] = logneg) -> dict:
    """V(t) at each snapshot step from the ensemble of u(t) uᵀ(t) (``snapshot_moments``), z-scores against
    the scheme's discrete moments ``V_ref``, E_N(t) (``entanglement``, default the resonator's ``logneg``)
    with jackknife errors beside E_N of the moment solution ``V_moment`` (V(t) = e^{At} V0 e^{Aᵀt} + Q(t))."""
    V_sim, err, groups, weights = snapshot_moments(blocks, n, steps.size)
    z, zmax = zscores(V_sim, err, V_ref)
    en, en_err = jackknife_logneg_over_time(groups, weights, entanglement)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, cov_moment=V_moment, zscore=z, zscore_max=zmax,
                logneg_sim=en, logneg_sim_err=en_err, logneg_ref=np.array([entanglement(V) for V in V_moment]),
                time_steps=steps)
