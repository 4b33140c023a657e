"""Merging the results of a run's units as they finish: into the output file, streamed, and into sufficient
statistics, never into a pile of samples.

A merger takes each unit's result once (``add``, in any order), keeps what a checkpoint needs in ``state``
(small numpy arrays: which units are in, running reductions, the estimators' sums), and writes the output at
the end (``finish``). Large per-point data (a sweep's variables, recorded traces) go straight into a netCDF
file in the run's checkpoint folder (``data.nc``, ``results.io.StreamedNetCDF``) that becomes the output by a
rename: memory holds one unit's result, the statistics in progress and the estimates, never the samples;
scratch disk is the output itself plus the statistics (docs/dask.md, "How much memory and disk").

The engine (``runs.engine``) saves ``state`` beside ``data.nc`` now and then and when a run stops; a resumed
run rebuilds its merger from them (``resume``) and runs only the units not yet in.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from sde_com.errors import RunWarning
from sde_com.physics.feedback import loop_attrs
from sde_com.physics.gaussian import LINEARIZATION_TOLERANCE, linearization_ratio
from sde_com.results.catalogue import RECORDED, apply_catalogue, parameter_entry
from sde_com.results.io import StreamedNetCDF, write_dataset
from sde_com.results.sweep import (
    chain_variables,
    default_revival,
    parameter_grid,
    running_logneg_max,
    streamed_layout,
    streamed_tail,
)
from sde_com.simulation.assemble import reference_rates
from sde_com.simulation.estimators import DamagedSpill, MomentAccumulator, snapshot_sums, stat_block_size
from sde_com.simulation.simulate import (
    assemble_simulation,
    point_accumulator,
    point_estimates,
    prepare_simulation,
    settings_to_dict,
    time_coordinate,
    trace_coordinates,
)

DATA_FILE = "data.nc"  # the streamed output inside the checkpoint folder


def open_stream(folder: Path, sizes: dict, layout: dict, state: dict | None):
    """(the streamed file, the state to resume from): a resumed run reopens ``data.nc``; when it is missing or
    cannot be opened (a kill while HDF5 was writing), the saved state is dropped and the run starts again
    from its first unit (same results: the random numbers are counter-based)."""
    path = folder / DATA_FILE
    if state is not None:
        try:
            return StreamedNetCDF(path, sizes, layout, resume=True), state
        except (OSError, KeyError):
            print(f"note: the checkpoint's {DATA_FILE} could not be reopened; running every unit again",
                  file=sys.stderr)
        path.unlink(missing_ok=True)
    return StreamedNetCDF(path, sizes, layout), None


class Merger:
    """The merge of a run done whole by one unit (a time-step study, a single-point run): its result is the
    finished Dataset, written as it is."""

    def __init__(self, n_units: int):
        self.done = np.zeros(n_units, dtype=bool)
        self.dataset = None

    def add(self, index: int, result: dict) -> None:
        """Take unit ``index``'s result (once; any order)."""
        self.dataset = result["dataset"]
        self.done[index] = True

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps (arrays); ``sync`` first. A whole run's Dataset is not kept: a resumed run
        does its one unit again."""
        return {"done": np.zeros_like(self.done)}

    def sync(self) -> None:
        """Hand streamed data to the operating system before a checkpoint counts on it."""

    def tail(self, scenario) -> xr.Dataset:
        """What the output gets beside the streamed data, computed before the file is touched (a failure here
        leaves the checkpoint as it was)."""
        return finish_dataset(scenario, self.dataset)

    def commit(self, tail: xr.Dataset, output: Path, history: str | None) -> None:
        """Write the output (an existing file is replaced: the engine checked ``--force`` before any work)."""
        write_dataset(tail, output, force=True, history=history)

    def close(self) -> None:
        """Stop without finishing: keep what the checkpoint refers to."""

    def abort(self) -> None:
        """Stop and remove the streamed data."""


def linearization_checks(fluct, photons, stable) -> np.ndarray:
    """[stable points, points where the linearization is doubtful, worst ⟨δa†δa⟩ / |α|², stable points whose
    values overflowed] of a block:
    fluct, photons (points, branch, 2): ⟨δa†δa⟩ (``gaussian.fluctuation_numbers``) and |α|² of the driven and
    reflected modes, stable (points, branch) (``gaussian.linearization_ratio`` at every stable branch)."""
    stable = np.asarray(stable, dtype=bool)
    out = np.array([float(stable.any(axis=1).sum()), 0.0, 0.0, 0.0])
    if stable.any():
        ratio = np.where(stable[..., None], linearization_ratio(fluct, photons), 0.0).max(axis=-1)
        out[1] = float((ratio > LINEARIZATION_TOLERANCE).any(axis=1).sum())
        out[2] = float(np.nanmax(ratio, initial=0.0))
        # a stable branch whose V or mean field overflowed (extreme parameters): NaN where a value should be
        finite = np.isfinite(np.asarray(fluct, dtype=float)).all(axis=-1) & np.isfinite(photons).all(axis=-1)
        out[3] = float((stable & ~finite).any(axis=1).sum())
    return out


def warn_of(checks: np.ndarray, points: int) -> None:
    """The warnings of a run's ``linearization_checks`` (summed over blocks; the worst ratio a maximum)."""
    if points and checks[0] == 0:
        warnings.warn(f"no point of this run has a stable branch ({points} point(s)): every value of a steady "
                      "state is NaN", RunWarning, stacklevel=2)
    if checks[3]:
        warnings.warn(f"{int(checks[3])} stable point(s) overflowed (non-finite V or mean fields, NaN E_N): their "
                      "parameters are outside the range where the model can be computed", RunWarning, stacklevel=2)
    if checks[1]:
        warnings.warn(f"the linearization is doubtful at {int(checks[1])} of {int(checks[0])} stable point(s): an "
                      f"optical mode's fluctuation number ⟨δa†δa⟩ exceeds {LINEARIZATION_TOLERANCE:.0%} of its "
                      f"mean-field photon number |α|² (up to {checks[2]:.3g}×), the relative size of the "
                      "radiation-pressure terms the linearized equations drop", RunWarning, stacklevel=2)


class SweepMerger(Merger):
    """A steady-state sweep of a system with a chain (``sweep.fast_chain``: the spinning resonator's): each
    block of points streamed into ``data.nc``
    (``branch`` unlimited: it grows to the most branches of any point), the maximum of E_N over detuning
    folded block by block for ``logneg_max`` and ``revival``."""

    def __init__(self, scenario, units: list, folder: Path, state: dict | None):
        super().__init__(len(units))
        params = scenario.parameters
        self.scenario, self.units, self.params, self.system = scenario, units, params, scenario.system
        values, dims, self.shape, _ = parameter_grid(params, self.system)
        self.names = set(scenario.kind.variables_written(scenario))
        revival = (default_revival(dims, values) if scenario.variables is None
                   else bool({"revival", "logneg_max"} & self.names))
        self.store_cov = "cov" in self.names
        sizes, self.layout = streamed_layout(params, self.names, self.system)
        self.branches = np.zeros(len(units), dtype=np.int64)  # each unit's branch axis
        size, self.fold = running_logneg_max(params, self.system)
        self.logneg_max = np.full(size, np.nan) if revival else None
        self.checks = np.zeros(4)  # linearization_checks, summed (the worst ratio: a maximum)
        self.stream, state = open_stream(folder, sizes, self.layout, state)
        if state is not None:
            self.done, self.branches = state["done"].astype(bool), state["branches"]
            self.checks = state.get("checks", self.checks)
            if revival:
                self.logneg_max = state["logneg_max"]

    def add(self, index, result):
        start = self.units[index].start
        n_b = result["stable"].shape[1]
        data = chain_variables(result, n_b)
        for name in self.layout:
            self.stream.write_points(name, start, data[name], self.shape)
        if self.logneg_max is not None:
            self.fold(self.logneg_max, start, data["logneg"])
        photons = np.stack([data["photons"], data["photons_reflected"]], axis=-1)
        block = linearization_checks(result["fluct"], photons, data["stable"])
        self.checks[[0, 1, 3]] += block[[0, 1, 3]]
        self.checks[2] = max(self.checks[2], block[2])
        self.branches[index] = n_b
        self.done[index] = True

    def state(self):
        out = {"done": self.done, "branches": self.branches, "checks": self.checks}
        if self.logneg_max is not None:
            out["logneg_max"] = self.logneg_max
        return out

    def sync(self):
        self.stream.sync()

    def tail(self, scenario):
        n_b = int(self.branches.max(initial=1))
        if "stable" in self.layout:  # a block with fewer branches: its flags beyond them are False
            for unit, b in zip(self.units, self.branches, strict=True):
                if b < n_b:
                    zeros = np.zeros((unit.stop - unit.start, n_b - b), dtype=np.int8)
                    self.stream.write_points("stable", unit.start, zeros, self.shape, (slice(b, n_b),))
        tail = streamed_tail(self.params, n_b, self.store_cov, self.logneg_max, self.names, self.system)
        warn_of(self.checks, math.prod(self.shape))
        return finish_dataset(scenario, tail, streamed=set(self.layout))

    def commit(self, tail, output, history):
        self.stream.finish(tail, output, True, history)

    def close(self):
        self.stream.close()

    def abort(self):
        self.stream.abort()


def finish_dataset(scenario, ds: xr.Dataset, streamed=frozenset()) -> xr.Dataset:
    """Keep the scenario's [output] variables and add the provenance attrs (scenario text, plot spec).
    ``streamed``: variables already in the file (``runs.mergers``), whose coordinates stay."""
    wanted = scenario.variables
    if wanted is not None and streamed:  # the rest of a streamed file: every coordinate stays
        ds = ds.drop_vars([v for v in ds.data_vars if v not in wanted])
    elif wanted is not None:
        ds = ds[[v for v in wanted if v in ds.data_vars]]
    if wanted is not None and "cov" not in ds.data_vars and "cov" not in streamed:
        ds = ds.drop_vars([c for c in ("row", "col") if c in ds.coords])
    ds.attrs["scenario"] = scenario.text
    ds.attrs["scenario_name"] = scenario.name
    ds.attrs["title"] = scenario.title or ds.attrs.get("title") or scenario.name  # CF: never empty
    if scenario.plot:
        ds.attrs["plot"] = json.dumps(scenario.plot)
    return ds


class SimulationMerger(Merger):
    """Time-domain units: each (point, branch)'s statistics folded in trajectory order (a unit that finishes
    before its turn waits in ``pending``), its estimates made when its last unit is in; recorded traces and
    noises streamed into ``data.nc`` as their units finish. Memory and checkpoint: the statistics, the
    waiting units' statistics and the estimates, never the samples."""

    def __init__(self, scenario, units: list, models: list, folder: Path, state: dict | None):
        super().__init__(len(units))
        self.scenario, self.units, self.models = scenario, units, models
        self.sim = sim = scenario.simulation
        # each (point, branch)'s units in trajectory order: a range of the plan's indices
        self.order: dict[tuple[int, int], range] = {pair: units.pair_units(k) for k, pair in enumerate(units.pairs)}
        self.next = dict.fromkeys(self.order, 0)
        self.acc: dict[tuple[int, int], object] = {}
        self.pending: dict[int, dict] = {}
        self.estimates: dict[tuple[int, int], dict] = {}
        wanted = scenario.variables
        self.streamed = tuple(v for v in RECORDED if sim.traces and (wanted is None or v in wanted))
        self.system = scenario.system
        self.skeleton = prepare_simulation(sim, scenario.parameters, self.system)
        self.folder = folder
        self.stream = None
        if self.streamed:
            self.stream, state = open_stream(folder, *self._trace_layout(), state)
        if state is not None:
            try:
                self._restore(state)
            except DamagedSpill as exc:  # the state itself checked out: only the groups' file is bad
                warnings.warn(f"{exc}; every unit runs again", RunWarning, stacklevel=2)
                self.done[:] = False
                self.acc, self.pending, self.estimates = {}, {}, {}
                self.next = dict.fromkeys(self.order, 0)

    def _trace_layout(self):
        dims = list(self.scenario.dimensions)
        sizes = {**{d: self.skeleton.sizes[d] for d in dims}, "branch": self.skeleton.sizes["branch"],
                 "trajectory": self.sim.traces, "time": self.sim.n_steps // self.sim.trace_every + 1,
                 "quadrature": self.skeleton.sizes["row"]}
        vdims = (*dims, "branch", "trajectory", "time", "quadrature")
        # NaN where no unit runs (an unstable branch, a point with fewer branches); else no fill pass
        everything = len(self.order) == math.prod(sizes[d] for d in (*dims, "branch"))
        fill = None if everything else np.nan
        probe = apply_catalogue(xr.Dataset({name: ((), 0.0) for name in self.streamed}), system=self.system)
        return sizes, {name: (vdims, "f8", dict(probe[name].attrs), fill) for name in self.streamed}

    def add(self, index, result):
        unit = self.units[index]
        result = dict(result)
        recorded = {name: result.pop(name) for name in RECORDED if name in result}
        if self.stream is not None and recorded:
            shape = tuple(self.skeleton.sizes[d] for d in self.scenario.dimensions)
            at = (*np.unravel_index(unit.point, shape), unit.branch,
                  slice(unit.first, unit.first + recorded["trace"].shape[0]))
            for name in self.streamed:
                self.stream.write(name, at, recorded[name])
        key = (unit.point, unit.branch)
        if self.order[key][self.next[key]] != index:  # waits for its turn: as statistics, not samples
            result = snapshot_sums(result, stat_block_size(self.sim.trajectories))
        self.pending[index] = result
        self.done[index] = True
        self._fold(key)

    def _fold(self, key) -> None:
        """Fold the waiting units of ``key`` that are next in trajectory order; estimates when complete."""
        order = self.order[key]
        while self.next[key] < len(order) and order[self.next[key]] in self.pending:
            i = order[self.next[key]]
            if key not in self.acc:
                self.acc[key] = point_accumulator(self.models[i], self.sim, self._spill(key))
            self.acc[key].add(self.pending[i])
            del self.pending[i]
            self.next[key] += 1
        if self.next[key] == len(order) and key in self.acc:
            self.estimates[key] = point_estimates(self.models[order[0]], self.sim, self.acc[key])
            del self.acc[key]

    def _spill(self, key) -> Path | None:
        """Where a transient's finished jackknife groups go (a file per point and branch in the checkpoint
        folder: memory then holds one group over the snapshot times, not all of them)."""
        return self.folder / f"groups-{key[0]}-{key[1]}.bin" if self.sim.transient else None

    def state(self):
        out = {"done": self.done}
        for (p, b), acc in self.acc.items():
            out.update({f"acc:{p}:{b}:{k}": v for k, v in acc.to_arrays().items()})
        for (p, b), n in self.next.items():
            out[f"next:{p}:{b}:n"] = np.asarray(n)
        for i, result in self.pending.items():
            out.update({f"pending:{i}:{k}": np.asarray(v) for k, v in result.items()})
        for (p, b), est in self.estimates.items():
            out.update({f"est:{p}:{b}:{k}": np.asarray(v) for k, v in est.items() if v is not None})
        return out

    def _restore(self, state: dict) -> None:
        self.done = state["done"].astype(bool)
        groups: dict[tuple[str, ...], dict] = {}
        for name, value in state.items():
            if name != "done":
                what, *key, field = name.split(":")
                groups.setdefault((what, *key), {})[field] = value
        for (what, *key), fields in groups.items():
            if what == "acc":
                point = (int(key[0]), int(key[1]))
                self.acc[point] = MomentAccumulator.from_arrays(fields, self._spill(point))
            elif what == "next":
                self.next[(int(key[0]), int(key[1]))] = int(fields["n"])
            elif what == "pending":
                self.pending[int(key[0])] = fields
            elif what == "est":
                self.estimates[(int(key[0]), int(key[1]))] = fields

    def sync(self):
        for acc in self.acc.values():
            acc.sync()
        if self.stream is not None:
            self.stream.sync()

    def tail(self, scenario):
        sim, params = self.sim, scenario.parameters
        ds = finish_dataset(scenario, assemble_simulation(sim, params, self.skeleton.copy(), self.estimates,
                                                          system=self.system), streamed=set(self.streamed))
        if self.stream is None:
            return ds
        omega_ref = float(reference_rates(self.system, params)[0])  # one: a run with traces cannot sweep it
        return apply_catalogue(ds.assign_coords({**trace_coordinates(sim, self.system),
                                                 **time_coordinate(sim, omega_ref)}), system=self.system)

    def commit(self, tail, output, history):
        if self.stream is None:
            write_dataset(tail, output, force=True, history=history)
        else:
            self.stream.finish(tail, output, True, history)

    def close(self):
        if self.stream is not None:
            self.stream.close()

    def abort(self):
        if self.stream is not None:
            self.stream.abort()


class ConditionalMerger(Merger):
    """The merge of a conditional run's units (blocks of trajectories at each grid point,
    ``simulation.conditional``): each unit's sums kept apart and added in unit order when the run finishes, so
    that the output is the same bits however the units ran (threads, Dask workers, a resume); traces placed by
    point and trajectory. A checkpoint keeps them all."""

    def __init__(self, scenario, units, models: list, state: dict | None):
        super().__init__(len(units))
        self.scenario, self.units, self.models = scenario, units, models
        model = models[0]
        d, m, n_snap = model["Phi"].shape[0], model["H"].shape[0], model["saved"].size
        traces, points = scenario.simulation.traces, units.points
        from sde_com.simulation.conditional import summed_shapes

        self.parts = {k: np.zeros((len(units), *shape)) for k, shape in summed_shapes(d, m, n_snap).items()}
        self.parts |= {"trace": np.zeros((points, traces, n_snap, d)),
                      "estimate": np.zeros((points, traces, n_snap, d)),
                      "record": np.zeros((points, traces, n_snap - 1, m))}
        if state is not None:
            self.done = state["done"].astype(bool)
            for k in self.parts:
                self.parts[k] = np.array(state[k])

    def add(self, index, result):
        unit = self.units[index]
        from sde_com.simulation.conditional import SUMMED

        for k in SUMMED:
            self.parts[k][index] = result[k]
        for k in ("trace", "estimate", "record"):
            self.parts[k][unit.point, unit.first:unit.first + result[k].shape[0]] = result[k]
        self.done[index] = True

    def state(self):
        return {"done": self.done, **self.parts}

    def dataset_of(self, scenario) -> xr.Dataset:
        """The run's Dataset: each point's units added in order (``conditional_dataset``), the points on the
        grid's swept dimensions."""
        from sde_com.simulation.conditional import SUMMED, conditional_dataset

        sim, system, blocks = scenario.simulation, scenario.system, self.units.blocks
        per_point = []
        for point in range(self.units.points):
            first = point * blocks
            sums = {k: self.parts[k][first].copy() for k in SUMMED}
            for i in range(first + 1, first + blocks):  # in unit order: conditional_simulate's sums, bit for bit
                for k in sums:
                    sums[k] = sums[k] + self.parts[k][i]
            sums.update({k: self.parts[k][point] for k in ("trace", "estimate", "record")})
            per_point.append(conditional_dataset(self.models[first], system, sim.trajectories, sums))
        ds = _on_grid(per_point, scenario)
        loop = scenario.tables.get("feedback")
        ds.attrs.update(seed=int(sim.seed), simulation=json.dumps(settings_to_dict(sim)),
                        measure=json.dumps(list(scenario.tables["measure"])),
                        **({"feedback": json.dumps(loop_attrs(loop))} if loop else {}))
        return ds

    def tail(self, scenario):
        return finish_dataset(scenario, self.dataset_of(scenario))


def _on_grid(per_point: list[xr.Dataset], scenario) -> xr.Dataset:
    """Datasets of the flat grid points (C order) as one, over the swept parameters (none: the one point's)."""
    values, dims, shape, _ = parameter_grid(scenario.parameters, scenario.system)
    if not dims:
        return per_point[0]
    first = per_point[0]
    data = {name: ((*dims, *var.dims), np.stack([p[name].values for p in per_point]).reshape((*shape, *var.shape)),
                   var.attrs) for name, var in first.data_vars.items()}
    ds = xr.Dataset(data, coords=first.coords, attrs=first.attrs)
    return ds.assign_coords({d: (d, values[d], parameter_entry(scenario.system.parameters[d]).attrs) for d in dims})
