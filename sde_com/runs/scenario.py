"""Scenario files: TOML data (never code) → validated run plan → Dataset.

A scenario has a ``[model]`` table whose keys are sweep parameters (``sde_com.results.sweep.SWEEP_PARAMETERS``),
each a scalar, a list, or a range ``{start, stop, num}`` (num ≥ 1 points, both ends included); keys left
out take the paper's values. Optional: ``title``, ``description``, ``[simulate]``, one of ``[drive]``,
``[wigner]``, ``[detect]``, ``[output]`` (``variables``: which data variables to keep) and ``[plot]`` (how
``sde-com plot`` draws it; see ``sde_com.plotspec``). Every key, its type, unit, default and range are declared
once in ``sde_com.schema``, which the checks here read; what remains here are the checks across keys.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import xarray as xr

from sde_com.results.sweep import VARIABLE_INFO, sweep, validate_parameters
from sde_com.runs.plotspec import PLOT_KINDS, RunOutline  # noqa: F401 (PLOT_KINDS: re-exported, the schema's)
from sde_com.runs.plotspec import check_plot as _check_plot
from sde_com.runs.schema import RANGE, SCHEMA, ScenarioError, check_keys, check_table, check_top_level, defaults
from sde_com.simulation.simulate import (
    SIM_VARIABLE_INFO,
    SimulationSettings,
    settings_to_dict,
    simulate,
    simulate_time_steps,
)

RANGE_KEYS = tuple(RANGE.keys)
OUTPUT_KEYS = tuple(SCHEMA["output"].keys)
PLOT_KEYS = tuple(SCHEMA["plot"].keys)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: sweep parameters, output selection, plot spec and the source text."""

    parameters: dict
    simulation: SimulationSettings | None = None
    dt_study: tuple[float, ...] | None = None
    drive: dict | None = None
    wigner: dict | None = None
    detect: dict | None = None
    variables: tuple[str, ...] | None = None
    plot: dict = field(default_factory=dict)
    title: str = ""
    description: str = ""
    text: str = ""
    name: str = ""

    @property
    def dimensions(self) -> list[str]:
        """The swept parameters (lists and ranges), in file order."""
        return [k for k, v in self.parameters.items() if isinstance(v, list)]

    @property
    def run_outline(self) -> RunOutline:
        """What the run writes beside the swept parameters (its kind, added dimensions): for ``check_plot``."""
        single = next((t for t in SINGLE_POINT_TABLES if getattr(self, t) is not None), None)
        return run_outline(self.simulation, self.dt_study, single, getattr(self, single) if single else None)


def _parse_value(value):
    """A checked [model] value: a range becomes its list of points."""
    if isinstance(value, dict):
        return np.linspace(float(value["start"]), float(value["stop"]), value["num"]).tolist()
    return value


def parse_scenario(text: str, name: str = "", base: Path | None = None) -> Scenario:
    """Validate scenario TOML text; raise ScenarioError naming the bad key and the allowed values."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name or 'scenario'}: not valid TOML: {exc}") from exc
    check_top_level(raw)
    params = _parse_model(raw.get("model", {}))
    simulation, dt_study = _parse_simulation(raw.get("simulate"))
    given = [t for t in SINGLE_POINT_TABLES if t in raw]
    if len(given) > 1:
        raise ScenarioError(f"give at most one of the tables {['[' + n + ']' for n in SINGLE_POINT_TABLES]}, "
                            f"got {given}")
    variables = _parse_output(raw.get("output"), simulation, given)
    plot = check_table("plot", raw.get("plot", {}))
    if simulation is not None and (simulation.transient or simulation.traces) and isinstance(
            params.get("omega_m"), list):
        raise ScenarioError("[model] omega_m cannot be swept in a run with snapshots or traces (time in seconds)")
    drive = _parse_drive(raw.get("drive"), simulation, dt_study, params, base)
    wigner = _parse_wigner(raw.get("wigner"), simulation, dt_study, params)
    detect = _parse_detect(raw.get("detect"), simulation, dt_study, params)
    scenario = Scenario(params, simulation, dt_study, drive, wigner, detect, variables, plot, raw.get("title", ""),
                        raw.get("description", ""), text, name)
    if plot:  # a figure that cannot be drawn from this run's output fails here, before any work
        check_plot(plot, params, variables, run=scenario.run_outline)
    return scenario


def _parse_model(table) -> dict:
    """[model] → sweep parameters (ranges expanded), each value checked against the schema and the grid."""
    params = {k: _parse_value(v) for k, v in check_table("model", table).items()}
    try:  # what the schema cannot say (e.g. a grid that the sweep refuses)
        validate_parameters(params)
    except ValueError as exc:
        raise ScenarioError(f"[model] {exc}") from exc
    return params


def _parse_simulation(table) -> tuple[SimulationSettings | None, tuple[float, ...] | None]:
    """[simulate] → (settings, the dt list of a time-step study or None)."""
    if table is None:
        return None, None
    table = dict(check_table("simulate", table))
    dts = table.get("dt")
    if isinstance(dts, list):  # a time-step study: one run per dt, a `dt` dimension
        table["dt"] = dts[0]
    try:  # the checks across keys (save_times within the duration, traces <= trajectories, ...)
        settings = SimulationSettings(**table)
        if isinstance(dts, list):
            if settings.transient or settings.traces:
                raise ValueError("a list of dt (a time-step study) cannot record snapshots or traces")
            for dt in dts:
                replace(settings, dt=dt)  # validates each
            return settings, tuple(float(x) for x in dts)
        return settings, None
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"[simulate] {exc}") from exc


def _parse_output(table, simulation, single: list[str]) -> tuple[str, ...] | None:
    """[output] variables: names of the variables this run produces."""
    if table is None:
        return None
    variables = check_keys("output", table).get("variables")
    if variables is None:
        return None
    if single:  # a single-point run has its own variables
        allowed = list(_single_point_variables(single[0]))
    else:
        allowed = list(VARIABLE_INFO) + (list(SIM_VARIABLE_INFO) if simulation else [])
    if isinstance(variables, list) and all(isinstance(v, str) for v in variables):
        bad = [v for v in variables if v not in allowed]
        if bad or not variables:
            raise ScenarioError(f"output.variables: unknown {bad}; allowed: {allowed}")
    check_table("output", table)
    return tuple(variables)


SINGLE_POINT_TABLES = ("drive", "wigner", "detect")


def _single_point_variables(name: str) -> tuple[str, ...]:
    from sde_com.simulation.detection import DETECT_VARIABLES
    from sde_com.simulation.drive import DRIVE_VARIABLES
    from sde_com.simulation.wigner import WIGNER_VARIABLES

    return {"drive": DRIVE_VARIABLES, "wigner": WIGNER_VARIABLES, "detect": DETECT_VARIABLES}[name]


def _single_point_table(name: str, table, params) -> dict | None:
    """Checks shared by [drive], [wigner], [detect]: the schema's, at one operating point."""
    if table is None:
        return None
    check_table(name, table)
    if any(isinstance(v, list) for v in params.values()):
        raise ScenarioError(f"[{name}] runs one operating point: every [model] value must be a scalar")
    return dict(table)


def _parse_drive(table, simulation, dt_study, params, base: Path | None = None) -> dict | None:
    """[drive]: a time-dependent drive envelope (sde_com.simulation.drive.Drive fields, + mean_field_start, + file:
    a two-column text file of samples, relative to the scenario file, read into times/values)."""
    from sde_com.simulation.drive import Drive, load_samples

    table = _single_point_table("drive", table, params)
    if table is None:
        return None
    if simulation is None or not simulation.transient or dt_study:
        raise ScenarioError("[drive] needs a [simulate] transient (save_times or save_every) with a single dt")
    if "file" in table:
        if table.get("kind", "samples") != "samples" or "times" in table or "values" in table:
            raise ScenarioError("drive.file needs kind = 'samples' (or no kind) and no times/values")
        try:
            table["times"], table["values"] = load_samples((base or Path(".")) / table.pop("file"))
        except ValueError as exc:
            raise ScenarioError(f"[drive] {exc}") from exc
        table["kind"] = "samples"
    try:
        Drive(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in table.items()
                 if k != "mean_field_start"})
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"[drive] {exc}") from exc
    return table


def _parse_wigner(table, simulation, dt_study, params) -> dict | None:
    """[wigner]: the truncated-Wigner check of the linearization at one operating point."""
    table = _single_point_table("wigner", table, params)
    if table is not None and (simulation is None or simulation.method != "em" or simulation.transient
                              or dt_study):
        raise ScenarioError("[wigner] needs a [simulate] table with method = 'em', a single dt and no snapshots")
    return table


def _parse_detect(table, simulation, dt_study, params) -> dict | None:
    """[detect]: homodyne records, output spectra and filtered-mode E_N at one operating point."""
    table = _single_point_table("detect", table, params)
    if table is not None and (simulation is None or simulation.method != "em" or not simulation.traces
                              or simulation.trace_every != 1 or simulation.save_times is not None or dt_study):
        raise ScenarioError("[detect] needs a [simulate] table with method = 'em', traces >= 1 recorded at "
                            "every step (no save_times; save_every = dt or absent) and a single dt")
    return table


def check_plot(plot: dict, params: dict, variables: tuple[str, ...] | None, *,
               run: RunOutline | None = None) -> None:
    """Validate [plot] against the run it will draw, so that a bad figure spec fails before any work.

    ``run``: what the run writes beside the sweep (``Scenario.run_outline``; None: a steady-state sweep, [model]
    only). The defaults and checks are ``sde_com.plotspec``'s (one home), applied to the run's outline.
    """
    _check_plot(plot, params, variables, run=run)


def run_outline(simulation: SimulationSettings | None, dt_study: tuple[float, ...] | None = None,
                single: str | None = None, table: dict | None = None) -> RunOutline:
    """What a run with these [simulate] settings (and single-point table ``single``: 'drive', 'wigner',
    'detect', with its ``table``) writes beside the swept parameters, for ``check_plot``."""
    if simulation is None:
        return RunOutline()
    kind = single or "simulate"
    s = simulation
    sizes = {}
    if s.transient:
        sizes["time"] = int(s.snapshot_steps.size)
    elif s.traces:
        sizes["time"] = s.n_steps // s.trace_every + 1
    if s.traces:
        sizes["trajectory"] = int(s.traces)
    if dt_study:
        sizes["dt"] = len(dt_study)
    if kind == "detect":
        sizes["bandwidth"] = len({**defaults("detect"), **(table or {})}["filter_bandwidths"])
    return RunOutline(kind, sizes, s.transient)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: not UTF-8 text ({exc.reason})") from exc
    return parse_scenario(text, name=path.name, base=path.parent)


def run_scenario(scenario: Scenario, trace_sink=None) -> xr.Dataset:
    """Run the scenario (sweep, and the time-domain runs of [simulate]) → Dataset with provenance attrs.

    ``trace_sink``: see ``simulate.simulate``; without it recorded traces are kept in the Dataset.
    """
    wanted = scenario.variables
    if scenario.drive is not None:
        ds = _run_drive(scenario)
    elif scenario.wigner is not None:
        ds = _run_wigner(scenario)
    elif scenario.detect is not None:
        ds = _run_detect(scenario)
    elif scenario.dt_study:
        ds = simulate_time_steps(scenario.simulation, scenario.dt_study, **scenario.parameters)
    elif scenario.simulation is not None:
        ds = simulate(scenario.simulation, trace_sink=trace_sink, **scenario.parameters)
    else:
        store_cov = wanted is None or "cov" in wanted
        revival = None if wanted is None else bool({"revival", "logneg_max"} & set(wanted))
        ds = sweep(store_cov=store_cov, revival=revival, **scenario.parameters)
    return finish_dataset(scenario, ds)


def _run_single_point(scenario: Scenario, run, table_name: str | None = None) -> xr.Dataset:
    """Run ``run(device, detuning, direction)`` at the scenario's one operating point, with provenance."""
    from sde_com.physics.resonator.device import Device

    p = {**defaults("model"), **scenario.parameters}
    detuning = float(p.pop("detuning"))
    direction = str(p.pop("direction"))
    device = Device(**p)
    ds = run(device, detuning, direction)
    ds.attrs["parameters"] = json.dumps({**device.as_dict(), "detuning": detuning, "direction": direction})
    ds.attrs["simulation"] = json.dumps(settings_to_dict(scenario.simulation))
    if table_name is not None:
        ds.attrs[table_name] = json.dumps(getattr(scenario, table_name))
    return ds


def _run_drive(scenario: Scenario) -> xr.Dataset:
    from sde_com.simulation.drive import Drive, simulate_drive

    table = dict(scenario.drive)
    start = table.pop("mean_field_start", defaults("drive")["mean_field_start"])
    drive = Drive(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in table.items()})
    return _run_single_point(scenario, lambda d, x, r: simulate_drive(d, x, r, drive, scenario.simulation,
                                                                      mean_field_start=start), "drive")


def _run_wigner(scenario: Scenario) -> xr.Dataset:
    from sde_com.simulation.wigner import wigner_dataset

    branch = {**defaults("wigner"), **scenario.wigner}["branch"]
    return _run_single_point(scenario, lambda d, x, r: wigner_dataset(d, x, r, scenario.simulation, branch))


def _run_detect(scenario: Scenario) -> xr.Dataset:
    from sde_com.simulation.detection import detection_dataset

    t = {**defaults("detect"), **scenario.detect}  # absent keys: the schema's defaults
    return _run_single_point(scenario, lambda d, x, r: detection_dataset(
        d, x, r, scenario.simulation, t["mode"], float(t["theta"]), int(t["segment"]),
        tuple(t["filter_bandwidths"]), float(t["filter_center"])), "detect")


def finish_dataset(scenario: Scenario, ds: xr.Dataset) -> xr.Dataset:
    """Keep the scenario's [output] variables and add the provenance attrs (scenario text, plot spec)."""
    wanted = scenario.variables
    if wanted is not None:
        ds = ds[[v for v in wanted if v in ds.data_vars]]
        ds = ds.drop_vars([c for c in ("row", "col") if c in ds.coords and "cov" not in ds.data_vars])
    ds.attrs["scenario"] = scenario.text
    ds.attrs["scenario_name"] = scenario.name
    ds.attrs["title"] = scenario.title or ds.attrs.get("title") or scenario.name  # CF: never empty
    if scenario.plot:
        ds.attrs["plot"] = json.dumps(scenario.plot)
    return ds

