"""Trajectory ensembles of the linearized Langevin equations du = A u dt + dW, E[dW dWᵀ] = D dt (Eq. (10)).

An operating point is prepared once (``prepare_point``: stability, the scheme's one-step map u ← F u + L ξ,
the initial covariance), then run in units of work: blocks of trajectories whose results depend only on the
seed and their trajectory indices (``run_block``: sufficient statistics per block of trajectories, never the
samples), folded in trajectory order (``point_accumulator``, ``MomentAccumulator.add``) and turned into
estimates with errors (``point_estimates``; ``estimate_point`` does both).
A sweep's units (``SimulationUnit``) are planned point by point and branch by branch (``plan_units``) and run
anywhere (``run_unit``: in process, or on Dask workers). Times in units of 1/ω_m unless a name says seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.kernels import ensemble as kernels
from sde_com.kernels.accumulators import (
    block_moments,
    block_outer_moments,
    fold_outer_moments,
    sums_larger_than_samples,
)
from sde_com.physics.gaussian import logneg, logneg_rows_packed
from sde_com.physics.linear import lyapunov_covariance_reference, moment_covariances
from sde_com.physics.model import OperatingPoint, points
from sde_com.physics.stability import decide_stability
from sde_com.physics.system import LinearSystem, pair_labels
from sde_com.random import INITIAL_STREAM, sample_gaussian
from sde_com.results.sweep import DEFAULT_SYSTEM, Grid, as_system, parameter_grid, same_system
from sde_com.simulation.estimators import (
    N_BATCHES,
    MomentAccumulator,
    covariance_factor,
    stat_block_size,
    steady_estimates,
    transient_estimates,
)
from sde_com.simulation.schemes import EulerMaruyama, get_scheme
from sde_com.simulation.settings import SimulationSettings

# Default unit of work: ≥ 5e7 trajectory-steps (≈ 0.4 s of kernel time on 2 threads, so a Dask unit's ~20 ms of
# scheduling is < 5 %), and ≥ 64 trajectories so that every numba thread gets whole 16-lane SIMD blocks.
STEPS_PER_UNIT = 50_000_000
MIN_TRAJECTORIES_PER_UNIT = 64
TRACE_BYTES_PER_UNIT = 48 * 2**20  # recorded traces + noises held per unit (the rest streams to the file);
# three units can be in memory at once (one runs, one is merged, one is written): 64 MiB measured 605–660 MB


# The thermal state of a point: the system's thermal covariance (2N×2N), a callable giving it
# (``LinearSystem.thermal_covariance`` at the point's parameters), or None (none defined).
Thermal = np.ndarray | Callable[[], np.ndarray] | None


def _thermal_state(thermal: Thermal) -> np.ndarray:
    if thermal is None:
        raise UserError("initial = 'thermal' needs the system's thermal state, which this point does not define")
    return np.asarray(thermal() if callable(thermal) else thermal, dtype=float)


def initial_covariance(initial, V_steady: np.ndarray | None, thermal: Thermal,
                       dimension: int = 6) -> np.ndarray:
    """Covariance of the initial state (dimension × dimension): steady N(0, V) (``V_steady``), thermal (each
    mode in its bath's thermal state, ``LinearSystem.thermal_covariance``, or a callable giving it), zero, or a
    given covariance (UserError naming ``initial`` and the
    expected shape unless it is dimension × dimension)."""
    if not isinstance(initial, str):
        V0 = np.asarray(initial, dtype=float)
        if V0.shape != (dimension, dimension):
            raise UserError(f"initial covariance must have the system's shape ({dimension}, {dimension}), "
                            f"got {V0.shape}")
        return V0
    if initial == "steady":
        if V_steady is None:
            raise UserError("initial = 'steady' needs a stable operating point (no steady state here)")
        return V_steady
    if initial == "thermal":
        V0 = _thermal_state(thermal)
        if V0.shape != (dimension, dimension):
            raise UserError(f"thermal covariance of shape {V0.shape}, expected ({dimension}, {dimension})")
        return V0
    return np.zeros((dimension, dimension))


def step_maps(A: np.ndarray, D: np.ndarray, dt: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(F, L) of the scheme named ``method`` for a step dt (A, D, dt in the same time unit); dt checked first."""
    scheme = get_scheme(method)
    scheme.check_dt(A, dt)
    return scheme.step(A, D, dt)


@dataclass(frozen=True)
class PointModel:
    """One operating point and branch prepared for the kernels; times in units of 1/ω_ref (ω_m for the
    spinning resonator).

    A, D: drift and diffusion / ω_ref (2N×2N).  F, L: the scheme's one-step map u ← F u + L ξ.  C0: C0 C0ᵀ = V0, the
    initial covariance.  V_inf: Lyapunov V of Eq. (11) (None where unstable).  V_stationary: the covariance
    the scheme samples in the steady state (V_dt for Euler–Maruyama, V for exact; None where unstable).
    max_dt_em: the Euler–Maruyama stability limit of dt, whatever the scheme (reported beside every run).
    entanglement: V → E_N the run reports (``reported_entanglement``: the resonator's driven mode and
    mechanics, or every pair of another system's modes; default: modes 0 and 2).
    """

    A: np.ndarray
    D: np.ndarray
    F: np.ndarray
    L: np.ndarray
    V0: np.ndarray
    C0: np.ndarray
    V_inf: np.ndarray | None
    stable: bool
    max_dt_em: float
    V_stationary: np.ndarray | None = None
    entanglement: Callable[[np.ndarray], float] = logneg

    @property
    def dimension(self) -> int:
        """2N, the number of quadratures."""
        return self.A.shape[0]


@dataclass(frozen=True)
class PairEntanglement:
    """E_N (Eqs. (12)–(13)) of modes i and j of a 2N×2N covariance: the pair a run reports; ``batch_packed``
    of a stack of covariances given as upper triangles (the same bits, ``gaussian.logneg_rows_packed``). No
    pair (i = j): NaN."""

    i: int
    j: int

    def __call__(self, V: np.ndarray) -> float:
        return logneg(V, self.i, self.j) if self.i != self.j else math.nan

    def _rows(self) -> np.ndarray:
        return np.array([2 * self.i, 2 * self.i + 1, 2 * self.j, 2 * self.j + 1], dtype=np.int64)

    def packed_entries(self, d: int) -> tuple[np.ndarray | None, PairEntanglement, int]:
        """(kept, reduced, 4): the entries of a packed d×d upper triangle (row-major) that E_N reads, those of the
        pair's rows in increasing order, and the pair within the 4×4 matrix of those rows, so that
        ``reduced.batch_packed(P[:, kept], 4)`` is ``batch_packed(P, d)`` bit for bit (the same 4×4 blocks, in
        the same order). No pair: (None, self, d), every entry."""
        if self.i == self.j:
            return None, self, d
        rows = sorted(self._rows().tolist())
        kept = [a * d - a * (a - 1) // 2 + b - a for k, a in enumerate(rows) for b in rows[k:]]
        return np.array(kept, dtype=np.int64), PairEntanglement(int(self.i > self.j), int(self.i < self.j)), 4

    def batch_packed(self, P: np.ndarray, d: int) -> np.ndarray:
        """``batch`` of covariances given as upper triangles (n, d (d + 1) / 2), row-major."""
        if self.i == self.j:
            return np.full(len(P), math.nan)
        return logneg_rows_packed(np.ascontiguousarray(P, dtype=float), d, self._rows())


@dataclass(frozen=True)
class AllPairs:
    """E_N (Eqs. (12)–(13)) of every pair of modes (i < j, in order) of a 2N×2N covariance, N ≥ 2: the ``pair``
    dimension of a system's ensembles (``shape``: the number of pairs); each pair's values are
    ``PairEntanglement``'s, bit for bit."""

    n_modes: int

    @property
    def pairs(self) -> list[PairEntanglement]:
        return [PairEntanglement(i, j) for i, j in itertools.combinations(range(self.n_modes), 2)]

    @property
    def shape(self) -> tuple[int]:
        return (len(self.pairs),)

    def __call__(self, V: np.ndarray) -> np.ndarray:
        return np.array([p(V) for p in self.pairs])

    def packed_entries(self, d: int) -> tuple[None, AllPairs, int]:
        """Every entry: the pairs read them all (see ``PairEntanglement.packed_entries``)."""
        return None, self, d

    def batch_packed(self, P: np.ndarray, d: int) -> np.ndarray:
        """(n, pairs): ``PairEntanglement.batch_packed`` of each pair."""
        return np.stack([p.batch_packed(P, d) for p in self.pairs], axis=-1)


def reported_entanglement(system: LinearSystem) -> PairEntanglement | AllPairs:
    """The E_N a run of ``system`` reports (the one decision): of its ``reported_pair`` where it names one (the
    resonator's U and mechanics), without a ``pair`` dimension; else of every pair of modes (``AllPairs``,
    over ``pair``); a single mode: NaN (``entanglement_of``)."""
    if system.reported_pair is not None:
        return PairEntanglement(*system.reported_pair)
    if len(system.modes) < 2:
        return entanglement_of(len(system.modes))
    return AllPairs(len(system.modes))


def reported_pairs(system: LinearSystem) -> list[str]:
    """The labels of the ``pair`` dimension of a run of ``system`` (none: one pair, no such dimension)."""
    return pair_labels(system.modes) if isinstance(reported_entanglement(system), AllPairs) else []


def entanglement_of(n_modes: int) -> PairEntanglement:
    """E_N of the first and last of ``n_modes`` modes (the spinning resonator's driven mode and mechanics, as
    ``logneg``); NaN for a single mode. What a run reports: ``reported_entanglement``."""
    return PairEntanglement(0, max(n_modes - 1, 0))


def prepare_point(A: np.ndarray, D: np.ndarray, omega_ref: float, thermal: Thermal,
                  settings: SimulationSettings) -> PointModel:
    """Check the run against the operating point (stability, the scheme's dt) and build the kernels' inputs.

    A, D: 2N×2N in rad/s; ``omega_ref``: ω_ref of the system, the time unit (ω_m for the spinning resonator);
    ``thermal``: the thermal state (``Thermal``: the system's thermal covariance or a callable giving it).
    """
    stable = decide_stability(A, omega_ref).stable  # Routh–Hurwitz on A/ω_ref: the project's one decision
    V_inf = lyapunov_covariance_reference(A / omega_ref, D / omega_ref) if stable else None
    return _prepare(A / omega_ref, D / omega_ref, stable, V_inf, thermal, settings)


def prepare_operating_point(op: OperatingPoint, omega_ref: float, thermal: Thermal,
                            settings: SimulationSettings, entanglement=None) -> PointModel:
    """``prepare_point`` of one branch of ``physics.model.points``: its stability verdict and Lyapunov V;
    ``entanglement``: the E_N it reports (``reported_entanglement``; None: of its first and last mode)."""
    model = _prepare(op.drift / omega_ref, op.diffusion / omega_ref, op.stable, op.cov, thermal, settings)
    return model if entanglement is None else dataclasses.replace(model, entanglement=entanglement)


def _prepare(A_s: np.ndarray, D_s: np.ndarray, stable: bool, V_inf: np.ndarray | None, thermal: Thermal,
             settings: SimulationSettings) -> PointModel:
    """The kernels' inputs from A, D / ω_ref (time in units of 1/ω_ref: V is unchanged) and the verdict."""
    s = settings
    if not stable and not (s.transient and s.allow_unstable):
        raise UserError("the operating point is unstable (no steady state): steady-state estimates are refused; "
                         "a transient (save_times/save_every) may run with allow_unstable = true")
    F, L = (np.ascontiguousarray(m) for m in step_maps(A_s, D_s, s.dt, s.method))
    # "steady" means the scheme's own stationary state (V_dt for EM, V for exact), so no burn-in is needed
    V_stationary = s.scheme.stationary_covariance(F, L, V_inf)
    d = A_s.shape[0]
    V0 = initial_covariance(s.initial, V_stationary, thermal, d)
    if s.snapshot_steps.size and s.snapshot_steps.max() > s.n_steps:
        raise UserError("snapshot times beyond the simulated time")
    return PointModel(A_s, D_s, F, L, V0, np.ascontiguousarray(covariance_factor(V0)), V_inf, stable,
                      EulerMaruyama().max_dt(A_s), V_stationary, entanglement_of(d // 2))


def statistics_layout(settings: SimulationSettings) -> tuple[int, int]:
    """(n_items, S): the independent items of a point's statistics and the items per statistics block —
    (trajectories, ``stat_block_size(trajectories)``), or for one steady trajectory its N_BATCHES batch means
    as items in blocks of one."""
    if not settings.transient and settings.trajectories == 1:
        return N_BATCHES, 1
    return settings.trajectories, stat_block_size(settings.trajectories)


class _LazySequence(Sequence):
    """A sequence whose items are computed from their index (``_item``): planning never holds every unit."""

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._item(i) for i in range(len(self))[index]]
        n = len(self)
        i = operator.index(index)
        i = i + n if i < 0 else i
        if not 0 <= i < n:
            raise IndexError(f"unit {index} of {n}")
        return self._item(i)

    def _item(self, i: int):
        raise NotImplementedError


class TrajectoryBlocks(_LazySequence):
    """(first trajectory, count) of each unit of a point, in order (``trajectory_blocks``), computed on demand:
    ``traced_units`` units of ``traced`` trajectories, then units of ``chunk``, the last ones cut at n."""

    def __init__(self, n: int, chunk: int, traced: int, traces: int):
        self.n, self.chunk, self.traced = n, chunk, traced
        self.split = min(n, -(-traces // traced) * traced) if traces else 0  # where the untraced units start
        self.traced_units = -(-self.split // traced)
        self.length = self.traced_units + -(-(n - self.split) // chunk)

    def __len__(self) -> int:
        return self.length

    def _item(self, i: int) -> tuple[int, int]:
        if i < self.traced_units:
            first = i * self.traced
            return first, min(self.traced, self.n - first)
        first = self.split + (i - self.traced_units) * self.chunk
        return first, min(self.chunk, self.n - first)


def trajectory_blocks(settings: SimulationSettings, dimension: int = 6) -> TrajectoryBlocks:
    """(first trajectory, count) of each unit of ``chunk`` trajectories, in order (a sequence computed on
    demand). Units are whole statistics blocks: ``chunk`` (default: ≥ STEPS_PER_UNIT trajectory-steps and ≥
    MIN_TRAJECTORIES_PER_UNIT) is rounded up to a multiple of S = ``stat_block_size(trajectories)``, so every
    first is a multiple of S. Units that record traces are cut smaller, to about TRACE_BYTES_PER_UNIT of traces
    and noises, so that memory stays bounded however long the traces (the result does not depend on the
    units); ``dimension``: 2N."""
    n = settings.trajectories
    S = stat_block_size(n)
    c = settings.chunk or min(n, max(MIN_TRAJECTORIES_PER_UNIT, STEPS_PER_UNIT // settings.n_steps))
    c = -(-c // S) * S
    per_trace = 2 * 8 * dimension * (settings.n_steps // settings.trace_every + 1)
    traced = max(S, min(c, TRACE_BYTES_PER_UNIT // per_trace // S * S))
    return TrajectoryBlocks(n, c, traced, settings.traces)


def _recorded_noise(model: PointModel, s: SimulationSettings, traces: np.ndarray, noises: np.ndarray):
    """The noise that drove each recorded state: the kernel's increments, or with a decimation of k =
    trace_every steps the innovation u_k − F^k u_{k−1} between recorded states."""
    if s.trace_every == 1:
        return noises
    Fk = np.linalg.matrix_power(model.F, s.trace_every)
    noises = np.zeros_like(traces)
    noises[:, 1:] = traces[:, 1:] - traces[:, :-1] @ Fk.T
    return noises


def _batch_means(model: PointModel, s: SimulationSettings, u0: np.ndarray, first: int) -> np.ndarray:
    """Time averages of u uᵀ over N_BATCHES consecutive batches of one trajectory (after the burn-in)."""
    _, batch_uu, batch_len = kernels.run_batch_means(model.F, model.L, u0, s.seed, first, s.n_steps,
                                                     s.burn_in_steps, N_BATCHES)
    if batch_len < 1:
        raise UserError(f"duration must span at least {N_BATCHES} steps for batch means with one trajectory")
    return batch_uu[0] / batch_len


def _statistics(x: np.ndarray, first: int, block_size: int) -> dict:
    """The ``run_block`` statistics of per-item symmetric values x (n, d, d), items first, first + 1, … (first
    a multiple of block_size): per block the count and the sums of x and x² in item order (``block_moments``),
    packed to the upper triangle as ``block_outer_moments``."""
    r, c = np.triu_indices(x.shape[-1])
    total, total_sq = block_moments(np.ascontiguousarray(x[:, r, c]), block_size)
    return _stat_dict(first, block_size, x.shape[0], total, total_sq)


def _blocks(first: int, block_size: int, count: int) -> dict:
    """The ``run_block`` keys ``first_block`` and ``stat_count`` of items [first, first + count)."""
    k = -(-count // block_size)
    counts = np.full(k, block_size, dtype=np.int64)
    counts[-1] = count - block_size * (k - 1)
    return dict(first_block=np.int64(first // block_size), stat_count=counts)


def _stat_dict(first: int, block_size: int, count: int, total: np.ndarray, total_sq: np.ndarray) -> dict:
    return dict(_blocks(first, block_size, count), stat_sum=total, stat_sum_sq=total_sq)


def run_block(model: PointModel, settings: SimulationSettings, first: int, count: int) -> dict:
    """Trajectories [first, first + count) of one point (a unit of ``trajectory_blocks``: first a multiple of
    S, count too unless the unit ends the point): the sufficient statistics the estimators need from them.

    A flat dict of numpy arrays (it may be saved with ``np.savez``):
      ``first_block`` int64 scalar, the index of the unit's first statistics block (first // S);
      ``stat_count`` (k,) int64, the items in each of its k blocks;
      ``stat_sum``, ``stat_sum_sq`` (k, …, q): per block the sums of x and of x² (elementwise), x per item,
        packed: the upper triangle (q = d (d + 1) / 2 entries, row-major) of the symmetric x: steady runs
        x = a trajectory's time average of u uᵀ after the burn-in, (k, q); transient runs x = u(t) uᵀ(t) at
        every snapshot, (k, n_t, q). For a single steady trajectory the items are
        its N_BATCHES batch averages (batch means) in blocks of one (``statistics_layout``);
      or, for a transient whose blocks' sums would outweigh the samples (``sums_larger_than_samples``: blocks
        of at most d + 1 trajectories), ``stat_snapshots`` (n_t, d, count), the states at the snapshots,
        which ``MomentAccumulator.add`` folds into the same bits (``snapshot_sums`` makes the sums);
      ``trace``, ``noise`` (when traces are recorded): paths of the unit's traced trajectories.
    Each block's sums are taken in an order fixed by trajectory index within the block, so a unit's result
    depends only on the seed and its trajectory indices, and a block's on its own trajectories only.
    ``point_accumulator(...).add`` folds these results in order.
    """
    s = settings
    _, S = statistics_layout(s)
    if first % S or (count % S and first + count != s.trajectories):
        raise ValueError(f"trajectories [{first}, {first + count}) are not whole statistics blocks of {S}")
    u0 = sample_gaussian(model.C0, s.seed, first, count, INITIAL_STREAM)
    n_rec = max(0, min(s.traces - first, count))
    out = {}
    if not s.transient and s.trajectories == 1:
        out.update(_statistics(_batch_means(model, s, u0, first), 0, 1))
        if not n_rec:
            return out
    if s.transient and _moments_in_stepper(model, S):
        total, total_sq, traces, noises = kernels.run_ensemble_moments(
            model.F, model.L, u0, s.seed, first, s.n_steps, s.snapshot_steps, n_rec, s.trace_every, S)
        out.update(_stat_dict(first, S, count, total, total_sq))
    elif s.transient:  # no time averages are needed: burn-in over the whole run (nothing summed)
        _, _, _, snaps, traces, noises = kernels.run_ensemble(
            model.F, model.L, u0, s.seed, first, s.n_steps, s.n_steps, s.snapshot_steps, n_rec, s.trace_every)
        if sums_larger_than_samples(S, model.dimension):
            out.update(_blocks(first, S, count), stat_snapshots=snaps.transpose(1, 2, 0))  # time-major: no copy
        else:
            out.update(_stat_dict(first, S, count, *block_outer_moments(snaps, S)))
    else:
        _, sum_uu, n_avg, _, traces, noises = kernels.run_ensemble(
            model.F, model.L, u0, s.seed, first, s.n_steps, s.burn_in_steps, s.snapshot_steps, n_rec, s.trace_every)
        if not out:
            out.update(_statistics(sum_uu / n_avg, first, S))
    if n_rec:
        out["trace"], out["noise"] = traces, _recorded_noise(model, s, traces, noises)
    return out


def _moments_in_stepper(model: PointModel, block_size: int) -> bool:
    """Whether a transient's snapshot moments are made inside the stepper (``kernels.run_ensemble_moments``:
    d = 6, statistics blocks of whole lane blocks), else in a pass over the snapshots; the same bits."""
    return model.dimension == 6 and block_size % 16 == 0


def warm_up_kernels(model: PointModel, settings: SimulationSettings) -> None:
    """Run every kernel a unit of this run calls (``run_block``) on a tiny input of the same types, so that
    they are compiled, or loaded from the cache, before the run (``runs.engine.connect``)."""
    s = settings
    n_items, S = statistics_layout(s)
    d = model.dimension
    u0 = sample_gaussian(model.C0, s.seed, 0, 1, INITIAL_STREAM)
    steps = min(2, s.n_steps)
    snapshot_steps = np.arange(steps + 1, dtype=np.int64) if s.transient else s.snapshot_steps[:0]
    if s.transient and _moments_in_stepper(model, S):
        kernels.run_ensemble_moments(model.F, model.L, np.zeros((S, d)), s.seed, 0, steps, snapshot_steps,
                                     1 if s.traces else 0, 1, S)
        return
    kernels.run_ensemble(model.F, model.L, u0, s.seed, 0, steps, 0, snapshot_steps, 1 if s.traces else 0, 1)
    if not s.transient and s.trajectories == 1:
        kernels.run_batch_means(model.F, model.L, u0, s.seed, 0, N_BATCHES, 0, N_BATCHES)
    if s.transient and sums_larger_than_samples(S, d):
        q = d * (d + 1) // 2
        fold_outer_moments(np.zeros((1, d, S)), 0, S, np.zeros((1, q)), np.zeros((1, q)))
    elif s.transient:
        block_outer_moments(np.zeros((S, 1, d)), S)
    else:
        block_moments(np.zeros((S, d * (d + 1) // 2)), S)


def point_accumulator(model: PointModel, settings: SimulationSettings, spill=None) -> MomentAccumulator:
    """An empty ``MomentAccumulator`` for the ``run_block`` results of one point and branch (``spill``: a file
    for its finished jackknife groups, see ``MomentAccumulator``)."""
    n_items, S = statistics_layout(settings)
    d = model.dimension
    shape = (settings.snapshot_steps.size, d, d) if settings.transient else (d, d)
    kept = model.entanglement.packed_entries(d)[0] if hasattr(model.entanglement, "packed_entries") else None
    return MomentAccumulator(n_items, S, shape, spill, kept)


def point_estimates(model: PointModel, settings: SimulationSettings, acc: MomentAccumulator) -> dict:
    """Estimates with errors and their references from the complete statistics ``acc`` of one point.

    Steady runs: against the scheme's stationary covariance. Transients: against the scheme's discrete
    moments, with the moment solution V(t) = e^{At} V0 e^{Aᵀt} + Q(t) beside them (``cov_moment``).
    """
    s = settings
    out: dict = {"stable": model.stable, "cov": model.V_inf, "max_dt_em": model.max_dt_em}
    if not s.transient:
        out.update(steady_estimates(acc, model.V_stationary, model.V_inf, model.entanglement))
        return out
    steps = s.snapshot_steps
    V_moment = moment_covariances(model.A, model.D, model.V0, steps, s.dt)
    V_ref = s.scheme.moment_reference(model.F, model.L, model.V0, steps, V_moment)
    out.update(transient_estimates(acc, steps, V_ref, V_moment, model.entanglement))
    return out


def estimate_point(model: PointModel, settings: SimulationSettings, blocks) -> dict:
    """``point_estimates`` of the ``run_block`` results ``blocks`` of one point, an iterable in trajectory
    order (it may load them one at a time: only the statistics are kept)."""
    acc = point_accumulator(model, settings)
    for block in blocks:
        acc.add(block)
    return point_estimates(model, settings, acc)


def simulate_point(A: np.ndarray, D: np.ndarray, omega_ref: float, thermal: Thermal, settings: SimulationSettings,
                   trace_sink: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> dict:
    """Run an ensemble at one operating point (A, D in rad/s, 2N×2N; ``omega_ref``: the system's ω_ref, the time
    unit; ``thermal``: its thermal state, see ``prepare_point``) and return estimates beside their references.

    Steady-state mode (no snapshots): ``cov_sim`` from time averages after the burn-in, ``cov_sim_err`` from
    the spread of the per-trajectory averages over independent trajectories (batch means over 32
    consecutive batches when there is one trajectory), ``cov_ref`` the covariance the scheme samples
    (Lyapunov V for exact, the discrete-Lyapunov V_dt for EM), ``cov`` the continuous V, z-scores against
    ``cov_ref``, E_N with jackknife errors. Transient mode: the same per snapshot time, with the moment
    solution as reference. ``trace_sink(first_trajectory, traces, noises)`` receives recorded paths block
    by block (else they are returned in memory).
    """
    model = prepare_point(A, D, omega_ref, thermal, settings)
    acc = point_accumulator(model, settings)
    traces, noises = [], []
    for first, count in trajectory_blocks(settings, model.dimension):
        block = run_block(model, settings, first, count)
        if "trace" in block:
            if trace_sink is not None:
                trace_sink(first, block.pop("trace"), block.pop("noise"))
            else:
                traces.append(block.pop("trace"))
                noises.append(block.pop("noise"))
        acc.add(block)
    out = point_estimates(model, settings, acc)
    if settings.traces and trace_sink is None:
        out["trace"], out["noise"] = np.concatenate(traces), np.concatenate(noises)
    return out


# Units of a sweep ------------------------------------------------------------------------------------------


def _point_parameters(values: dict, dims: list[str], index: tuple[int, ...]) -> dict:
    return {k: (v[index[dims.index(k)]] if k in dims else v[0]) for k, v in values.items()}


@dataclass(frozen=True, order=True)
class SimulationUnit:
    """A piece of a sweep's time-domain work: trajectories [first, first + count) at the flat sweep point
    ``point``, mean-field branch ``branch``. With the sweep parameters and the settings it is all a worker
    needs; its result depends on nothing else (seed and trajectory indices key the random numbers)."""

    point: int
    branch: int
    first: int
    count: int


def system_grid(system: LinearSystem, params: Mapping[str, object]):
    """(values per parameter, swept dimensions in the order given, grid shape) of a run's parameters: the one
    grid rule, ``results.sweep.parameter_grid``."""
    values, dims, shape, _ = parameter_grid(params, system)
    return values, dims, shape


def point_parameters(system: LinearSystem, params: Mapping[str, object], point: int) -> dict:
    """The system's parameters (plain Python values) at flat grid point ``point`` (C order)."""
    return _grid_points(system, params, [point])[0]


def grid_points(system: LinearSystem, params: Mapping[str, object]) -> list[dict]:
    """The system's parameters (plain Python values) at every flat grid point (C order), from one grid
    (``system_grid``); a ``Grid`` keeps them."""
    if isinstance(params, Grid) and same_system(params.system, system):
        return params.cached("points", lambda: _grid_points(system, params))
    return _grid_points(system, params)


def _grid_points(system: LinearSystem, params: Mapping[str, object], points=None) -> list[dict]:
    values, dims, shape = system_grid(system, params)
    out = []
    for point in range(math.prod(shape)) if points is None else points:
        p = _point_parameters(values, dims, np.unravel_index(point, shape))
        out.append({k: (str(v) if isinstance(v, (str, np.str_)) else v.item() if isinstance(v, np.generic) else v)
                    for k, v in p.items()})
    return out


def point_model(settings: SimulationSettings, params: dict, point: int, branch: int,
                system: LinearSystem | str = DEFAULT_SYSTEM) -> PointModel:
    """The prepared model of flat sweep point ``point``, branch ``branch`` (validates the settings there):
    A, D, V and the stability verdict from ``physics.model.points(system, ·)``, ω_ref from the system's
    ``reference_rate``, the thermal state from its ``thermal_covariance``."""
    system = as_system(system)
    p = system.resolve(point_parameters(system, params, point))
    op = points(system, p)[branch]
    return prepare_operating_point(op, system.reference_rate(p), functools.partial(system.thermal_covariance, p),
                                   settings, reported_entanglement(system))


class SimulationPlan(_LazySequence):
    """Every unit of a run (``plan_units``), computed on demand: the (point, branch) pairs that run, in order,
    each with the same trajectory blocks."""

    def __init__(self, pairs: list[tuple[int, int]], blocks: TrajectoryBlocks):
        self.pairs, self.blocks = pairs, blocks

    def __len__(self) -> int:
        return len(self.pairs) * len(self.blocks)

    def _item(self, i: int) -> SimulationUnit:
        k, j = divmod(i, len(self.blocks))
        return SimulationUnit(*self.pairs[k], *self.blocks[j])

    def pair_units(self, k: int) -> range:
        """The indices of the units of pair ``k``, in trajectory order."""
        return range(k * len(self.blocks), (k + 1) * len(self.blocks))


def plan_units(settings: SimulationSettings, sweep_ds: xr.Dataset) -> SimulationPlan:
    """Every unit of a run, in a fixed order: points (C order), branches, trajectory blocks."""
    stable = sweep_ds["stable"].values.reshape(-1, sweep_ds.sizes["branch"])
    n_branches = sweep_ds["n_branches"].values.reshape(-1)
    dimension = sweep_ds.sizes.get("row", 6)
    blocks = trajectory_blocks(settings, dimension)
    pairs = [(point, b) for point in range(stable.shape[0]) for b in range(int(n_branches[point]))
             if stable[point, b] or (settings.transient and settings.allow_unstable)]
    units = SimulationPlan(pairs, blocks)
    if not units:  # unstable branches are skipped (and reported); a run of nothing is refused
        how = ("allow_unstable = true runs a transient there anyway" if settings.transient else
               "only a transient (save_every or save_times) can run there, with allow_unstable = true")
        raise UserError(f"no operating point of this run has a stable branch, so there is nothing to simulate; {how}")
    return units


def run_unit(settings: SimulationSettings, params: dict, unit: SimulationUnit, model: PointModel | None = None,
             system: LinearSystem | str = DEFAULT_SYSTEM) -> dict:
    """Run one unit (see ``run_block`` for what it returns); ``model``: its point's, if already prepared."""
    model = model if model is not None else point_model(settings, params, unit.point, unit.branch, system)
    return run_block(model, settings, unit.first, unit.count)
