"""What a run will cost, estimated before any work, and the runs this machine cannot hold, refused.

``estimate`` gives the units, the work (trajectory-steps or sweep points), a time, the peak memory, the size
of the output and the scratch disk beside it, from the scenario and its planned units alone. ``check_resources``
refuses (UserError, before anything is created) a run whose peak memory exceeds the memory available, whose
output and scratch exceed the free disk, or whose counts overflow the kernels' 64-bit integers. A run that is
only long may start: it shows the estimate and its progress, and can be interrupted and resumed.

The rates are this project's measurements on its 2-core development machine (docs/performance.md), scaled by
the Numba threads; the output's size is the run's outline (``plotspec.outline``: the catalogue's variables
and dimensions at the run's sizes), 8 bytes an element, with the largest number of branches a sweep point may
have. Figures are rough (for the shipped outputs at most 4× the file, and not under half of it where the file
is more than headers: test_reliability): they are for planning and for refusing what cannot fit, not promises.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sde_com.errors import UserError
from sde_com.results.catalogue import RECORDED
from sde_com.results.sweep import fast_chain
from sde_com.simulation.ensemble import reported_entanglement
from sde_com.simulation.estimators import N_JACKKNIFE_GROUPS

STEPS_PER_SECOND_PER_THREAD = 9.0e7  # trajectory-steps (d = 6, 1.9e8/s on 2 threads, `sde-com bench`)
SECONDS_PER_POINT_THREAD = 4.0e-6  # a steady-state sweep point end to end (1.97 µs on 2 threads)
# a point of the per-point path (no chain: Python per point; measured 0.28 ms for the single cavity, 0.4–0.6 ms
# for a two-mode Hamiltonian system with its grid check), and of a conditional one (+ a Riccati solve: 1.5 ms)
SECONDS_PER_POINT_SEAM = 5e-4
SECONDS_PER_POINT_CONDITIONAL = 1.5e-3
BASE_BYTES = 250 * 2**20  # the process: Python, numpy, Numba, xarray, netCDF4 and the compiled kernels
SWEEP_BLOCK_BYTES = 150 * 2**20  # a sweep block's arrays in flight (measured peak 300 MB for 500k points)
SWEEP_BRANCHES = 3  # the branches a sweep's output is sized with before the run (its branch axis grows)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Estimate:
    """A run's estimated cost (``estimate``); bytes are upper-end figures."""

    units: int
    work: int
    work_name: str  # "trajectory-steps" or "points"
    seconds: float
    peak_bytes: int
    output_bytes: int
    scratch_bytes: int

    def line(self) -> str:
        """The plan printed before a run: one line, "estimated: ..."."""
        return (f"estimated: {self.units} unit{'s' if self.units != 1 else ''}, {self.work:.3g} {self.work_name}, "
                f"{_duration(self.seconds)}, peak memory {_size(self.peak_bytes)}, output {_size(self.output_bytes)}, "
                f"scratch {_size(self.scratch_bytes)}")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 999.5 or unit == "PB":  # 999.5 and above round to 1e+03 in 3 digits: the next unit's 1
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return ""


def _duration(s: float) -> str:
    if s < 1:
        return "under 1 s"
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * length:
            return f"about {s / length:.3g} {unit}"
    return f"about {s:.2g} s"


def _threads() -> int:
    import numba

    return max(1, numba.get_num_threads())


def _outline_bytes(scenario, branches: int) -> tuple[int, int]:
    """(bytes, of them streamed) of every variable the run writes, from its outline (``plotspec.outline``: the
    catalogue's dimensions with the run's sizes: its system's, its pairs, the Welch bins kept), ``branches``
    branches per point, 8 bytes an element. Streamed to the file as the run goes: traces, and the whole of a
    resonator sweep (block by block)."""
    from sde_com.runs.plotspec import outline

    sizes, variables = outline(scenario.parameters, scenario.variables, scenario.run_outline)
    sizes = {**sizes, "branch": branches}
    total = streamed = 0
    for name, dims in variables.items():
        n = 8 * math.prod(sizes[d] for d in dims)
        total += n
        if name in RECORDED or scenario.run_outline.kind == "sweep":
            streamed += n
    return total, streamed


def _system_branches(scenario) -> int:
    """The branches of a run's first point (a system's branch count before the run)."""
    from sde_com.simulation.simulate import point_parameters

    system = scenario.system
    return max(1, len(system.branches(system.resolve(point_parameters(system, scenario.parameters, 0)))))


def _grid(scenario) -> tuple[int, ...]:
    from sde_com.results.sweep import parameter_grid

    return tuple(parameter_grid(scenario.parameters, scenario.system)[2])


def estimate(scenario, units) -> Estimate:
    """The cost of running ``scenario`` as the planned ``units``: its run kind's (``RunKind.cost``)."""
    return scenario.kind.cost(scenario, units)


def steady_cost(scenario, units, seconds_per_point: float | None = None, branches: int | None = None) -> Estimate:
    """The cost of a steady state over the grid (``SweepKind.cost``, and ``RunKind.cost`` of any kind without
    [simulate]): a chain's sweep is streamed, sized with the branches it usually has, at its threads' speed;
    any other system's with those of its first point (or ``branches``: a run without mean-field branches, the
    periodic state's one), one point at a time (``seconds_per_point``, default the per-point path's)."""
    points = math.prod(_grid(scenario))
    chain = fast_chain(scenario.system) is not None
    total, streamed = _outline_bytes(scenario, SWEEP_BRANCHES if chain else branches or _system_branches(scenario))
    seconds = points * (SECONDS_PER_POINT_THREAD / _threads() if chain and seconds_per_point is None else
                        seconds_per_point or SECONDS_PER_POINT_SEAM)
    return Estimate(len(units), points, "points", seconds, BASE_BYTES + SWEEP_BLOCK_BYTES + (total - streamed),
                    total, 0)


CONDITIONAL_STEP_COST = 1.6  # a conditional trajectory-step against an exact one (`sde-com bench --only conditional`)


def conditional_cost(scenario, units, n_snap: int, n_steps: int) -> Estimate:
    """The cost of conditional trajectories (``ConditionalKind``): trajectory-steps at the exact stepper's rate
    over CONDITIONAL_STEP_COST; memory for each unit's kept sums (2 n_snap d² floats), the traces, estimates
    and records, and one unit's normals (its lanes' blocks); output the traced arrays and the per-time ones."""
    s, d = scenario.simulation, scenario.system.dimension
    m = sum(2 if x.get("scheme") == "heterodyne" else 1 for x in scenario.tables["measure"])
    work = s.trajectories * n_steps
    kept = 8 * len(units) * (2 * n_snap * d * d + 3 * m)
    traced = 8 * s.traces * n_snap * (2 * d + m)
    per_time = 8 * n_snap * 4 * d * d
    return Estimate(len(units), work, "trajectory-steps",
                    work * CONDITIONAL_STEP_COST / (STEPS_PER_SECOND_PER_THREAD * _threads()),
                    BASE_BYTES + kept + 2 * traced + per_time + 64 * 2**20, traced + per_time, 0)


def ensemble_cost(scenario, units) -> Estimate:
    """The cost of a run that simulates (``RunKind.cost``): its trajectory-steps, and the memory of its units,
    statistics and streamed traces (only the plan's length and, for a ``SimulationPlan``, its pairs and block
    sizes are read, never every unit)."""
    s = scenario.simulation
    system = scenario.system
    d = system.dimension
    pairs = getattr(units, "pairs", None)  # a SimulationPlan: (point, branch) pairs × trajectory blocks
    if pairs is not None:
        branches = 1 + max((b for _, b in pairs), default=0)
        trajectories = len(pairs) * s.trajectories
        largest = min(s.trajectories, max(units.blocks.chunk, units.blocks.traced))
    else:  # a run done whole: a single point, or a time-step study at every point of the grid
        branches = 1
        largest = s.trajectories
        trajectories = s.trajectories * math.prod(_grid(scenario))
    n_snap = int(s.snapshot_steps.size) if s.transient else 0
    n_records = s.n_steps // s.trace_every + 1 if s.traces else 0
    work = trajectories * max(1, len(scenario.dt_study or ())) * s.n_steps
    total, streamed = _outline_bytes(scenario, branches)
    traced = min(largest, s.traces)
    unit_bytes = 8 * (largest * (n_snap * d + d * d + d) + traced * 2 * n_records * d)
    q = d * (d + 1) // 2
    accumulator = 8 * max(n_snap, 1) * q * 4
    kept = reported_entanglement(system).packed_entries(d)[0]  # a finished group keeps the entries E_N reads
    kept = q if kept is None else len(kept)
    scratch = (8 * n_snap * kept * N_JACKKNIFE_GROUPS) if n_snap else 0  # one point's finished groups at a time
    # units: one running, one being merged (the next runs meanwhile), one with the trace writer
    peak = BASE_BYTES + 3 * (total - streamed) + 3 * unit_bytes + accumulator
    return Estimate(len(units), work, "trajectory-steps",
                    work / (STEPS_PER_SECOND_PER_THREAD * _threads()), peak, total, scratch)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_counts(scenario) -> None:
    """Refuse counts that overflow the kernels' 64-bit integers (steps, snapshots, trajectory indices)."""
    s = scenario.simulation
    points = math.prod(_grid(scenario))
    if points > INT64_MAX:
        raise UserError(f"the [model] grid has {points:.3g} points: more than a 64-bit count holds")
    if s is None:
        return
    if s.n_steps * max(1, s.trajectories) > INT64_MAX // 8:
        raise UserError(f"[simulate] trajectories × steps = {s.trajectories} × {s.n_steps} overflows the kernels' "
                        "64-bit step and noise counters; use fewer trajectories or a larger dt")


def check_resources(est: Estimate, output: Path) -> None:
    """Refuse a run whose estimated peak memory exceeds the memory available now, or whose output and
    scratch exceed the free space of the output's file system."""
    memory = available_memory()
    if memory is not None and est.peak_bytes > memory:
        raise UserError(f"this run would need about {_size(est.peak_bytes)} of memory and {_size(memory)} is "
                        f"available ({est.line()}); run fewer points, trajectories or snapshot times")
    try:
        free = shutil.disk_usage(Path(output).parent).free
    except OSError:
        return
    if est.output_bytes + est.scratch_bytes > free:
        raise UserError(f"this run would write about {_size(est.output_bytes + est.scratch_bytes)} and "
                        f"{str(Path(output).parent)!r} has {_size(free)} free ({est.line()})")
