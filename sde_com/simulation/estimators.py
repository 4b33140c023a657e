"""Estimators with error bars, from trajectory ensembles of u (docs/physics.md, "The stochastic picture").

Steady state: V from time averages of u uᵀ, its standard error from the spread over independent trajectories
(batch means over ``N_BATCHES`` consecutive batches when there is one trajectory). Transients: V(t) from
ensembles of u(t) uᵀ(t). E_N (Eq. (13)) and other nonlinear functions of V: delete-one-group jackknife over
``N_JACKKNIFE_GROUPS`` groups fixed by trajectory index. Every estimate is compared entry by entry with its
reference by z-scores.

Both are reduced from sufficient statistics, never from the samples: trajectory i of n belongs to statistics
block k = i // S (S = ``stat_block_size(n)``), a unit of work returns the sums of x and x² over each of its
blocks (x: a trajectory's time average of u uᵀ, or u(t) uᵀ(t) at every snapshot), and a ``MomentAccumulator``
folds the blocks, in block order, into the sums of ``jackknife_groups`` groups of whole blocks. Every sum is
taken in an order fixed by trajectory and block indices, so the estimates are bitwise independent of the unit
size, the number of workers and the order in which units finish.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from sde_com.kernels.accumulators import block_outer_moments, fold_outer_moments, thread_map
from sde_com.physics.gaussian import logneg
from sde_com.physics.linear import psd_sqrt

N_JACKKNIFE_GROUPS = 32  # leave-one-group-out jackknife; more groups cost time, not accuracy
N_BATCHES = 32  # batch means for a single trajectory: each batch should span many relaxation times
MAX_STAT_BLOCK = 256  # trajectories per statistics block at most (a unit's statistics: n / 256 blocks)


def stat_block_size(n: int) -> int:
    """S, the trajectories per statistics block of a run of n trajectories: the largest power of two ≤ n / 32,
    clamped to [1, MAX_STAT_BLOCK], so there are ≥ N_JACKKNIFE_GROUPS blocks whenever n ≥ 32. Depends on n
    only: units of work are whole blocks, and a block's sums do not depend on the unit that computed them."""
    S = 1
    while 2 * S * N_JACKKNIFE_GROUPS <= n and 2 * S <= MAX_STAT_BLOCK:
        S *= 2
    return S


def jackknife_groups(n_blocks: int) -> int:
    """G = min(N_JACKKNIFE_GROUPS, K) groups of whole blocks; block k of K is in group k G // K."""
    return min(N_JACKKNIFE_GROUPS, n_blocks)


def covariance_factor(V: np.ndarray) -> np.ndarray:
    """C with C Cᵀ = V for a positive semidefinite V: its principal square root (``psd_sqrt``; singular V is
    fine, and the factor does not depend on the CPU's eigensolver)."""
    return psd_sqrt(V)


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


JACKKNIFE_WINDOW = 2048  # times per pass of the jackknife over a transient (bounds its temporaries)


class DamagedSpill(ValueError):
    """A checkpoint's spilled jackknife groups do not match the saved state (truncated or altered)."""


class MomentAccumulator:
    """Sufficient statistics of one (point, branch): per jackknife group, the count of trajectories and the sum
    of x over them, and over all trajectories the sum of x² (elementwise); x the per-trajectory quantity of
    shape ``shape`` (…, d, d), symmetric in its last two axes, so only their upper triangle is kept (packed,
    as ``run_block`` gives it).

    ``n_items`` trajectories (or batches) in blocks of ``block_size`` (K = ceil(n_items / block_size) blocks,
    G = ``jackknife_groups(K)`` groups of consecutive blocks; block k in group k G // K). ``add`` takes
    ``run_block`` results in block order (a left fold, block by block); a result that does not start at the
    next block is refused (ValueError): the caller buffers units that finish early. Groups therefore fill one
    after the other: only the open group's sum is updated, a finished one is final. It is kept in memory, or
    with ``spill`` (a file path) appended to that file, so that memory holds one group, not G of them, for a
    transient of very many snapshot times; with ``kept`` (indices into the packed entries, from
    ``entanglement.packed_entries``), only the entries the jackknife's function reads (10 of 21 for a pair of
    a 6×6 V: half the file). ``to_arrays`` / ``from_arrays`` checkpoint it exactly (``sync``
    first when spilling). ``moments`` gives V with errors once ``complete``; ``jackknife`` the delete-one-group
    errors of a function of V.
    """

    def __init__(self, n_items: int, block_size: int, shape: tuple[int, ...], spill: str | Path | None = None,
                 kept: np.ndarray | None = None):
        self.n_items, self.block_size, self.shape = int(n_items), int(block_size), tuple(int(x) for x in shape)
        self.n_blocks = -(-self.n_items // self.block_size)
        self.n_groups = jackknife_groups(self.n_blocks)
        self.next_block = 0
        self.upper = np.triu_indices(self.shape[-1])
        self.packed = (*self.shape[:-2], len(self.upper[0]))
        # the packed entries a finished group keeps: those the jackknife's function reads (all by default)
        self.kept = None if kept is None else np.asarray(kept, dtype=np.int64)
        self.group_count = np.zeros(self.n_groups, dtype=np.int64)
        self.open_group = 0  # the group the next block goes to; those before are finished
        self.open_sum = np.zeros(self.packed)
        self.total = np.zeros(self.packed)  # Σ of the finished groups' sums, in group order
        self.total_sq = np.zeros(self.packed)
        self.finished: list[np.ndarray] = []  # finished groups' sums, when not spilled
        self.spill = None if spill is None else Path(spill)
        self.spill_crc = 0  # CRC-32 of the spilled bytes, so far: a resume checks the file against it
        if self.spill is not None:
            self.spill.write_bytes(b"")

    @property
    def complete(self) -> bool:
        """Every block has been added."""
        return self.next_block == self.n_blocks

    @property
    def _kept_shape(self) -> tuple[int, ...]:
        """The shape of a finished group's sum: the packed shape, or its kept entries."""
        return self.packed if self.kept is None else (*self.packed[:-1], len(self.kept))

    def add(self, result: Mapping[str, np.ndarray]) -> None:
        """Fold a unit's statistics (``first_block``, ``stat_count``, and ``stat_sum``, ``stat_sum_sq`` or
        ``stat_snapshots``; the ``run_block`` keys) into the group sums and the total of x², block by block in
        block order. Snapshots are folded straight from the samples (``fold_outer_moments``: the same bits as
        their blocks' sums added here)."""
        first = int(result["first_block"])
        count = result["stat_count"]
        if first != self.next_block:
            raise ValueError(f"statistics of blocks from {first} given, block {self.next_block} expected next "
                             "(units must be added in trajectory order)")
        snapshots = result.get("stat_snapshots")
        shape = result["stat_sum"].shape[1:] if snapshots is None else (snapshots.shape[0], self.packed[-1])
        if first + len(count) > self.n_blocks or shape != self.packed:
            raise ValueError(f"{len(count)} blocks of shape {shape} from block {first} do not fit "
                             f"{self.n_blocks} blocks of packed shape {self.packed}")
        for j in range(len(count)):
            g = (first + j) * self.n_groups // self.n_blocks
            while self.open_group < g:
                self._close_group()
            self.group_count[g] += count[j]
            if snapshots is None:
                self.open_sum += result["stat_sum"][j]
                self.total_sq += result["stat_sum_sq"][j]
            else:
                fold_outer_moments(snapshots, j * self.block_size, self.block_size, self.open_sum, self.total_sq)
        self.next_block = first + len(count)
        if self.complete:
            self._close_group()

    def _close_group(self) -> None:
        self.total += self.open_sum
        kept = self.open_sum if self.kept is None else self.open_sum[..., self.kept]
        if self.spill is None:
            self.finished.append(kept)
        else:
            data = kept.tobytes()
            with open(self.spill, "ab") as f:
                f.write(data)
            self.spill_crc = zlib.crc32(data, self.spill_crc)
        self.open_sum = np.zeros(self.packed)
        self.open_group += 1

    def sync(self) -> None:
        """Make the spilled groups durable before a checkpoint counts on them."""
        if self.spill is not None:
            with open(self.spill, "ab") as f:
                os.fsync(f.fileno())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The state as arrays (e.g. for ``np.savez``); ``from_arrays`` restores it bit for bit (the spilled
        groups stay in their file: the state records how many there are)."""
        layout = np.array([self.n_items, self.block_size, self.next_block, self.open_group], dtype=np.int64)
        out = dict(layout=layout, shape=np.array(self.shape, dtype=np.int64), group_count=self.group_count.copy(),
                   open_sum=self.open_sum.copy(), total=self.total.copy(), total_sq=self.total_sq.copy())
        if self.kept is not None:
            out["kept"] = self.kept.copy()
        if self.spill is None:
            out["finished"] = np.array(self.finished).reshape(len(self.finished), *self._kept_shape)
        else:
            out["spill_crc"] = np.asarray(self.spill_crc, dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], spill: str | Path | None = None) -> MomentAccumulator:
        """The accumulator saved by ``to_arrays`` (``spill``: its file, cut back to the groups recorded)."""
        n_items, block_size, next_block, open_group = (int(x) for x in arrays["layout"])
        kept = arrays.get("kept")
        acc = cls(n_items, block_size, tuple(int(x) for x in arrays["shape"]), kept=kept)
        acc.next_block, acc.open_group = next_block, open_group
        acc.group_count[:] = arrays["group_count"]
        acc.open_sum[:] = arrays["open_sum"]
        acc.total[:] = arrays["total"]
        acc.total_sq[:] = arrays["total_sq"]
        if spill is None:
            acc.finished = list(arrays["finished"])
        else:
            acc.spill = Path(spill)
            size = open_group * math.prod(acc._kept_shape) * 8
            try:
                short = acc.spill.stat().st_size < size
                with open(acc.spill, "r+b") as f:
                    f.truncate(size)  # groups spilled after the state was saved
                    crc = 0
                    while chunk := f.read(1 << 22):
                        crc = zlib.crc32(chunk, crc)
            except OSError as exc:
                raise DamagedSpill(f"the checkpoint's jackknife groups {str(acc.spill)!r} cannot be read "
                                   f"({exc})") from exc
            if short or crc != int(arrays["spill_crc"]):
                raise DamagedSpill(f"the checkpoint's jackknife groups {str(acc.spill)!r} are truncated or altered "
                                   "(their CRC-32 differs from the saved state's)")
            acc.spill_crc = crc
        return acc

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        """The symmetric (…, d, d) matrices of upper triangles (…, d (d + 1) / 2)."""
        d = self.shape[-1]
        out = np.empty((*packed.shape[:-1], d, d))
        r, c = self.upper
        out[..., r, c] = packed
        out[..., c, r] = packed
        return out

    def _groups(self, a: int, b: int) -> np.ndarray:
        """The finished groups' sums at the leading (time) indices [a, b), flattened: (G, b − a, q)."""
        q = self._kept_shape[-1]
        if self.spill is None:
            return np.stack([g.reshape(-1, q)[a:b] for g in self.finished])
        n_lead = math.prod(self.packed[:-1])
        out = np.empty((self.n_groups, b - a, q))
        with open(self.spill, "rb") as f:
            for g in range(self.n_groups):
                f.seek((g * n_lead + a) * q * 8)
                if f.readinto(memoryview(out[g]).cast("B")) != out[g].nbytes:
                    raise RuntimeError(f"{self.spill}: group {g} is shorter than recorded")
        return out

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean of x, its standard error) from the sums of the groups in group order.

        V = Σx / n; the error from the one-pass variance s² = (Σx² / n − V²) · n / (n − 1) (clipped at 0; NaN
        for n = 1), / √n. The one-pass form loses ~ 1e-16 / (relative spread)² of s² to cancellation; the
        spread of per-trajectory averages and of u uᵀ is far above 1e-8 relative, so that is far below the
        statistical error of s² itself.
        """
        if not self.complete:
            raise ValueError(f"statistics of {self.next_block} of {self.n_blocks} blocks only")
        n = int(self.group_count.sum())
        V = self.total / n
        with np.errstate(invalid="ignore"):
            var = np.clip(self.total_sq / n - V**2, 0.0, None) * n / (n - 1) if n > 1 else np.full(V.shape, np.nan)
        return self._unpack(V), self._unpack(np.sqrt(var / n))

    def jackknife(self, entanglement, window: int = JACKKNIFE_WINDOW) -> tuple[np.ndarray, np.ndarray]:
        """``jackknife`` of ``entanglement`` (V → E_N; with a ``batch`` method for a stack of V when it has
        one) at every leading index of x (every time of a transient; a steady x has none): (E_N, error),
        evaluated ``window`` times at a time, a window per thread, so that memory stays that of a few windows of the
        group sums."""
        weights = self.group_count.astype(float)
        lead = self.packed[:-1]
        n_lead = math.prod(lead)
        per_v = tuple(getattr(entanglement, "shape", ()))  # values per V: () one pair, (pairs,) every pair
        en, err = np.empty((n_lead, *per_v)), np.empty((n_lead, *per_v))
        d = self.shape[-1]
        if self.kept is not None:  # the groups hold the entries of ``entanglement.packed_entries``
            kept, reduced, d_kept = entanglement.packed_entries(d)
            if kept is None or not np.array_equal(kept, self.kept):
                raise ValueError(f"the groups keep the entries {self.kept.tolist()}, not those {entanglement} "
                                 "reads")
            batch = functools.partial(reduced.batch_packed, d=d_kept)
        elif hasattr(entanglement, "batch_packed"):  # straight from the upper triangles
            batch = functools.partial(entanglement.batch_packed, d=d)
        else:
            def batch(P):
                return np.array([entanglement(V) for V in self._unpack(P)])

        def one_window(a: int) -> None:
            b = min(n_lead, a + window)
            en[a:b], err[a:b] = jackknife_batch(self._groups(a, b) / weights[:, None, None], weights, batch)

        thread_map(one_window, range(0, n_lead, window))  # windows are independent: the same bits in threads
        return en.reshape(tuple(lead) + per_v), err.reshape(tuple(lead) + per_v)


def snapshot_sums(result: Mapping[str, np.ndarray], block_size: int) -> dict:
    """A ``run_block`` result with its ``stat_snapshots`` replaced by their blocks' ``stat_sum`` and
    ``stat_sum_sq`` (``block_outer_moments``): what waits, or is checkpointed, until its turn to be added."""
    out = dict(result)
    snapshots = out.pop("stat_snapshots", None)
    if snapshots is not None:
        out["stat_sum"], out["stat_sum_sq"] = block_outer_moments(snapshots.transpose(2, 0, 1), block_size)
    return out


def jackknife_batch(groups: np.ndarray, weights: np.ndarray, batch) -> tuple[np.ndarray, np.ndarray]:
    """``jackknife`` at each of many times at once: groups (G, n, …) of group means (of V, in any layout
    ``batch`` reads), ``batch``: a stack of them (m, …) → their E_N (m,) → (E_N of the weighted mean,
    standard error) per time; NaN error where any delete-one value is not finite, as ``jackknife``."""
    g, n = groups.shape[:2]
    W = weights.sum()  # ``batch`` may give several values per V (every pair): (m, …) → (g, n, …) below
    total = weights[0] * groups[0]  # Σ_g w_g group_g in group order: the same bits for any layout (BLAS's
    for k in range(1, g):  # tensordot summed in an order that depends on the number of entries)
        total += weights[k] * groups[k]
    total /= W
    full = batch(total)
    if g < 2:
        return full, np.full(full.shape, math.nan)
    w = weights.reshape((-1,) + (1,) * (groups.ndim - 1))
    loo = batch(((total[None] * W - w * groups) / (W - w)).reshape(-1, *groups.shape[2:])).reshape(g, *full.shape)
    with np.errstate(invalid="ignore"):  # an infinite delete-one value: NaN error, below
        err = np.sqrt((g - 1) / g * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return full, np.where(np.all(np.isfinite(loo), axis=0), err, math.nan)


def steady_estimates(acc: MomentAccumulator, V_ref: np.ndarray, V_lyapunov: np.ndarray,
                     entanglement: Callable[[np.ndarray], float] = logneg) -> dict:
    """V from per-trajectory (or per-batch) time averages x of u uᵀ (the mean of u is zero; ``acc``: their
    statistics, shape (d, d)), errors from their spread over the independent trajectories (batches); z-scores
    against the scheme's stationary ``V_ref`` and against the Lyapunov V of Eq. (11) (for Euler–Maruyama the
    latter shows the time-step bias). ``entanglement``: V → E_N of the reported pair (default the resonator's
    ``logneg``), with jackknife errors over the groups. The spread comes from the one-pass variance of
    ``MomentAccumulator.moments`` (not a two-pass std: the relative spread of per-trajectory averages is far
    above 1e-8, so the cancellation it risks is far below the statistical error)."""
    V_sim, err = acc.moments()
    z, zmax = zscores(V_sim, err, V_ref)
    _, zmax_continuous = zscores(V_sim, err, V_lyapunov)
    en, en_err = (float(x) if np.ndim(x) == 0 else x for x in acc.jackknife(entanglement))
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, zscore=z, zscore_max=zmax,
                zscore_max_continuous=zmax_continuous, logneg_sim=en, logneg_sim_err=en_err,
                logneg_ref=entanglement(V_ref), logneg=entanglement(V_lyapunov))


def transient_estimates(acc: MomentAccumulator, steps: np.ndarray, V_ref: np.ndarray,
                        V_moment: np.ndarray, entanglement: Callable[[np.ndarray], float] = logneg) -> dict:
    """V(t) at each snapshot step from the ensemble of x = u(t) uᵀ(t) (``acc``: its statistics, shape
    (n_t, d, d)), z-scores against the scheme's discrete moments ``V_ref``, E_N(t) (``entanglement``, default
    the resonator's ``logneg``) with jackknife errors beside E_N of the moment solution ``V_moment``
    (V(t) = e^{At} V0 e^{Aᵀt} + Q(t))."""
    V_sim, err = acc.moments()
    z, zmax = zscores(V_sim, err, V_ref)
    en, en_err = acc.jackknife(entanglement)
    if hasattr(entanglement, "batch_packed"):
        r, c = np.triu_indices(V_moment.shape[-1])
        en_ref = entanglement.batch_packed(V_moment[..., r, c], V_moment.shape[-1])
    else:
        en_ref = np.array([entanglement(V) for V in V_moment])
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, cov_moment=V_moment, zscore=z, zscore_max=zmax,
                logneg_sim=en, logneg_sim_err=en_err, logneg_ref=en_ref, time_steps=steps)
