"""What a time-domain run does: ``SimulationSettings``, the validated form of the [simulate] table
(``sde_com.simulation.keys``). Times in units of 1/ω_ref (1/ω_m for the spinning resonator).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from sde_com import spec
from sde_com.errors import UserError
from sde_com.simulation.estimators import N_BATCHES
from sde_com.simulation.keys import SIMULATE
from sde_com.simulation.schemes import SCHEMES, Scheme, get_scheme

MAX_STEPS = 1e18  # steps of a run: the kernels' 64-bit step and noise counters, with room
MAX_SNAPSHOT_TIMES = 10**7  # snapshot times of a transient (its V(t) estimates are held in memory)

METHODS = SIMULATE.keys["method"].choices  # the schemes a scenario file may name
INITIAL_STATES = SIMULATE.keys["initial"].choices
SIMULATION_KEYS = tuple(SIMULATE.keys)  # == the SimulationSettings fields


def _default(key: str):
    return SIMULATE.keys[key].default


@functools.lru_cache(maxsize=8)
def _table(schemes: tuple[str, ...]) -> spec.Table:
    """[simulate] with the method's choices read from the live scheme registry (``register_scheme``)."""
    keys = dict(SIMULATE.keys)
    keys["method"] = replace(keys["method"], choices=schemes)
    return spec.Table(SIMULATE.name, SIMULATE.doc, MappingProxyType(keys))


@dataclass(frozen=True, kw_only=True)
class SimulationSettings:
    """What a time-domain run does (every time in units of 1/ω_ref, the system's reference rate: 1/ω_m for the
    built-in systems).

    method: the integration scheme's name in ``schemes.SCHEMES``: "em" (Euler–Maruyama) or "exact"
        (Φ = e^{A dt}, Van Loan noise; no time-step bias).
    dt: time step ω_ref·dt > 0.   burn_in: discarded first, ≥ 0.   duration: simulated after the burn-in, > 0.
    trajectories: ensemble size ≥ 1.   seed: integer ≥ 0; with the trajectory index it keys every random number.
    initial: "steady" (N(0, V)), "thermal" (each mode in its bath's thermal state: the system's
        ``thermal_covariance``; for the resonator optical vacuum, thermal mechanics), "zero", or a 2N×2N
        covariance (its shape is checked against the system's dimension when a point is prepared).
    save_times / save_every: ensemble snapshots (a transient run) at these times from t = 0, or every so
        often; without either, the run estimates the steady state from time averages after the burn-in.
    traces: record u(t) and its noise increments for this many trajectories, at the snapshot times when
        ``save_every`` is given, else at every step; with a decimation of k steps the recorded noise is the
        accumulated innovation u_n − F^k u_{n−k} that drove the trace between records.
    allow_unstable: run a transient at an operating point without steady state.
    chunk: trajectories per unit of work, rounded up to whole statistics blocks (``ensemble.trajectory_blocks``;
        results do not depend on it; default: about STEPS_PER_UNIT trajectory-steps per unit).
    """

    # defaults, types and ranges: the [simulate] table of sde_com.simulation.keys
    method: str = _default("method")
    dt: float = _default("dt")
    burn_in: float = _default("burn_in")
    duration: float = _default("duration")
    trajectories: int = _default("trajectories")
    seed: int = _default("seed")
    initial: str | np.ndarray = _default("initial")
    save_times: tuple[float, ...] | None = _default("save_times")
    save_every: float | None = _default("save_every")
    traces: int = _default("traces")
    allow_unstable: bool = _default("allow_unstable")
    chunk: int | None = _default("chunk")

    def __post_init__(self):
        spec.check_fields(self, _table(tuple(SCHEMES)))  # each field's type, range, choices
        # the checks across fields, in this order (the first failing one is reported)
        self._check_duration()
        if self.traces > self.trajectories:
            raise UserError(f"traces must be <= trajectories ({self.trajectories}), got {self.traces}")
        if not isinstance(self.initial, str):
            object.__setattr__(self, "initial", _covariance(self.initial))
        self._check_snapshots()

    def _check_duration(self) -> None:
        steps = self.total_time / self.dt
        if not steps < MAX_STEPS:  # before any count is made of it (an int of 1e300, an array of 1e11)
            raise UserError(f"(burn_in + duration) / dt = {steps:.3g} steps: more than the {MAX_STEPS:.0e} a run "
                            "can count; use a larger dt or a shorter duration")
        if self.dt > self.total_time * (1 + 1e-12):
            raise UserError(f"dt = {self.dt:g} is longer than burn_in + duration = {self.total_time:g} (unit: "
                            "1/ω_ref): the run would be one step of dt")
        need = N_BATCHES if self.trajectories == 1 else 1
        if self.n_steps - self.burn_in_steps < need and not self.transient:
            raise UserError("duration must span at least one step after the burn-in "
                             f"({N_BATCHES} with a single trajectory, for batch means)")

    def _check_snapshots(self) -> None:
        """save_times (ascending, within the run) or save_every (≥ dt), not both; traces need save_every."""
        if self.save_times is not None and self.save_every is not None:
            raise UserError("give save_times or save_every, not both")
        if self.save_times is not None:
            t = np.asarray(self.save_times, dtype=float)
            if np.any(np.diff(t) < 0):
                raise UserError(f"save_times must be ascending, got {list(self.save_times)}")
            if t[-1] > self.total_time * (1 + 1e-12):
                raise UserError(f"save_times must lie within burn_in + duration = {self.total_time:g}")
            object.__setattr__(self, "save_times", tuple(float(x) for x in t))
        if self.save_every is not None and not self.dt <= self.save_every <= self.total_time * (1 + 1e-12):
            raise UserError(f"save_every must be >= dt = {self.dt:g} and <= burn_in + duration = {self.total_time:g} "
                            f"(unit: 1/ω_ref), got {self.save_every!r}")
        if self.save_every is not None and self.n_steps // self.trace_every + 1 > MAX_SNAPSHOT_TIMES:
            raise UserError(f"save_every = {self.save_every:g} gives {self.n_steps // self.trace_every + 1:.3g} "
                            f"snapshot times, more than {MAX_SNAPSHOT_TIMES:.0e} (each holds the ensemble's V(t)); "
                            "save less often")
        if self.save_times is not None:
            steps = self.snapshot_steps
            same = np.flatnonzero(np.diff(steps) == 0)
            if same.size:
                a, b = self.save_times[same[0]], self.save_times[same[0] + 1]
                raise UserError(f"save_times {a:g} and {b:g} fall on the same step of dt = {self.dt:g}; give "
                                "times at least dt apart, or a smaller dt")
        if self.traces and self.save_times is not None:
            raise UserError("traces are recorded on a regular grid: use save_every, not save_times")

    def off_grid(self) -> list[str]:
        """The times given that are not whole numbers of steps of dt, each as what the run takes instead (they
        are rounded to the nearest step): for a warning, so that nothing is rounded silently."""
        def steps(t: float) -> float:
            return t / self.dt

        # 0.3 / 0.1 = 2.9999999999999996: decimal inputs miss whole steps by ~1e-16 relative; 1e-6 of a step
        # is far above that and far below any fraction of a step a user means
        def off(t: float) -> bool:
            return abs(steps(t) - round(steps(t))) > 1e-6 * max(1.0, abs(steps(t)))

        out = []
        for name, t in (("burn_in", self.burn_in), ("burn_in + duration", self.total_time),
                        ("save_every", self.save_every)):
            if t is not None and off(t):
                out.append(f"{name} = {t:g} is {steps(t):.4g} steps of dt = {self.dt:g}: the run takes "
                           f"{round(steps(t))} ({round(steps(t)) * self.dt:g})")
        odd = [t for t in self.save_times or () if off(t)]
        if odd:
            out.append(f"{len(odd)} of save_times (the first {odd[0]:g}) are not whole steps of dt = {self.dt:g}: "
                       f"the snapshots are at the nearest steps ({round(steps(odd[0])) * self.dt:g}, ...)")
        return out

    @property
    def scheme(self) -> Scheme:
        """The integration scheme named by ``method`` (``schemes.SCHEMES``)."""
        return get_scheme(self.method)

    @property
    def total_time(self) -> float:
        return self.burn_in + self.duration

    @property
    def n_steps(self) -> int:
        return max(1, int(round(self.total_time / self.dt)))

    @property
    def burn_in_steps(self) -> int:
        return int(round(self.burn_in / self.dt))

    @property
    def transient(self) -> bool:
        return self.save_times is not None or self.save_every is not None

    @property
    def snapshot_steps(self) -> np.ndarray:
        if self.save_times is not None:
            return np.array([int(round(t / self.dt)) for t in self.save_times], dtype=np.int64)
        if self.save_every is not None:
            return np.arange(0, self.n_steps + 1, self.trace_every, dtype=np.int64)
        return np.zeros(0, dtype=np.int64)

    @property
    def trace_every(self) -> int:
        return max(1, int(round(self.save_every / self.dt))) if self.save_every is not None else 1


def _covariance(initial) -> np.ndarray:
    """A given initial covariance as a float array: finite, symmetric, square, positive semidefinite (its size
    is checked against the system's dimension when a point is prepared: ``ensemble.initial_covariance``)."""
    try:
        V0 = np.asarray(initial, dtype=float)
    except (ValueError, TypeError):
        raise UserError("initial covariance must be a finite symmetric square matrix: rows of equal length, "
                        "numbers only") from None
    if V0.ndim != 2 or V0.shape[0] != V0.shape[1] or not np.all(np.isfinite(V0)) or not np.allclose(V0, V0.T):
        raise UserError(f"initial covariance must be a finite symmetric square matrix, got shape {V0.shape}")
    if np.linalg.eigvalsh(V0).min() < -1e-12 * max(1.0, np.abs(V0).max()):
        raise UserError("initial covariance must be positive semidefinite")
    return V0


def settings_to_dict(s: SimulationSettings) -> dict:
    """The settings as plain JSON-able values (provenance)."""
    out = {}
    for k in SIMULATION_KEYS:
        if k == "chunk":  # results do not depend on it
            continue
        v = getattr(s, k)
        out[k] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
    return out
