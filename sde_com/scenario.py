"""Scenario files: TOML data (never code) → validated run plan → Dataset.

A scenario has a ``[model]`` table whose keys are sweep parameters (``sde_com.sweep.SWEEP_PARAMETERS``),
each a scalar, a list, or a range ``{start, stop, num}`` (num ≥ 1 points, both ends included); keys left
out take the paper's values. Optional: ``title``, ``description``, ``[output]`` (``variables``: which data
variables to keep) and ``[plot]`` (how ``sde-com plot`` draws it; see ``sde_com.plot``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import xarray as xr

from ._version import __version__
from .simulate import (
    SIM_VARIABLE_INFO,
    SIMULATION_KEYS,
    SimulationSettings,
    settings_to_dict,
    simulate,
    simulate_time_steps,
)
from .sweep import SWEEP_PARAMETERS, VARIABLE_INFO, sweep, validate_parameters

TOP_LEVEL_KEYS = ("title", "description", "model", "simulate", "drive", "wigner", "detect", "output", "plot")
RANGE_KEYS = ("start", "stop", "num")
OUTPUT_KEYS = ("variables",)
PLOT_KINDS = ("lines", "map", "estimate", "matrix", "traces", "spectra")  # drawn by sde_com.plot
PLOT_KEYS = ("kind", "x", "y", "hue", "panel", "variable", "title", "panel_titles")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the offending key and what is allowed."""


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


def _parse_value(key: str, value):
    if isinstance(value, dict):
        extra = sorted(set(value) - set(RANGE_KEYS))
        missing = [k for k in RANGE_KEYS if k not in value]
        if extra or missing:
            raise ScenarioError(f"model.{key}: a range needs exactly the keys {list(RANGE_KEYS)}; "
                                f"unknown {extra}, missing {missing}")
        num = value["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ScenarioError(f"model.{key}.num must be an integer >= 1, got {num!r}")
        for end in ("start", "stop"):
            v = value[end]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ScenarioError(f"model.{key}.{end} must be a finite number, got {v!r}")
        return np.linspace(float(value["start"]), float(value["stop"]), num).tolist()
    if isinstance(value, list):
        if not value:
            raise ScenarioError(f"model.{key}: a list needs at least one value")
        return value
    return value


def parse_scenario(text: str, name: str = "", base: Path | None = None) -> Scenario:
    """Validate scenario TOML text; raise ScenarioError naming the bad key and the allowed values."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name or 'scenario'}: not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ScenarioError(f"unknown top-level key(s) {unknown}; allowed: {list(TOP_LEVEL_KEYS)}")
    model = raw.get("model", {})
    if not isinstance(model, dict):
        raise ScenarioError("[model] must be a table")
    unknown = [k for k in model if k not in SWEEP_PARAMETERS]
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [model]; allowed: {list(SWEEP_PARAMETERS)}")
    params = {k: _parse_value(k, v) for k, v in model.items()}
    simulation, dt_study = _parse_simulation(raw.get("simulate"))
    given = [name for name in SINGLE_POINT_TABLES if name in raw]
    if len(given) > 1:
        raise ScenarioError(f"give at most one of the tables {['[' + n + ']' for n in SINGLE_POINT_TABLES]}, "
                            f"got {given}")
    output = raw.get("output", {})
    if not isinstance(output, dict):
        raise ScenarioError("[output] must be a table")
    unknown = sorted(set(output) - set(OUTPUT_KEYS))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [output]; allowed: {list(OUTPUT_KEYS)}")
    variables = output.get("variables")
    if variables is not None:
        allowed = list(VARIABLE_INFO) + (list(SIM_VARIABLE_INFO) if simulation else [])
        single = [name for name in SINGLE_POINT_TABLES if isinstance(raw.get(name), dict)]
        if single:  # a single-point run has its own variables
            allowed = list(_single_point_variables(single[0]))
        if not isinstance(variables, list):
            raise ScenarioError(f"output.variables must be a list of names from {allowed}")
        bad = [v for v in variables if v not in allowed]
        if bad or not variables:
            raise ScenarioError(f"output.variables: unknown {bad}; allowed: {allowed}")
        variables = tuple(variables)
    plot = raw.get("plot", {})
    if not isinstance(plot, dict):
        raise ScenarioError("[plot] must be a table")
    unknown = sorted(set(plot) - set(PLOT_KEYS))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [plot]; allowed: {list(PLOT_KEYS)}")
    if plot:
        check_plot(plot, params, variables)
    try:  # check values now (names the field), so a bad file fails before any work
        validate_parameters(params)
    except ValueError as exc:
        raise ScenarioError(f"[model] {exc}") from exc
    if simulation is not None and (simulation.transient or simulation.traces) and "omega_m" in [
            k for k, v in params.items() if isinstance(v, list)]:
        raise ScenarioError("[model] omega_m cannot be swept in a run with snapshots or traces (time in seconds)")
    drive = _parse_drive(raw.get("drive"), simulation, dt_study, params, base)
    wigner = _parse_wigner(raw.get("wigner"), simulation, dt_study, params)
    detect = _parse_detect(raw.get("detect"), simulation, dt_study, params)
    return Scenario(params, simulation, dt_study, drive, wigner, detect, variables, plot, str(raw.get("title", "")),
                    str(raw.get("description", "")), text, name)


def _parse_simulation(table) -> tuple[SimulationSettings | None, tuple[float, ...] | None]:
    """[simulate] → (settings, the dt list of a time-step study or None)."""
    if table is None:
        return None, None
    if not isinstance(table, dict):
        raise ScenarioError("[simulate] must be a table")
    unknown = sorted(set(table) - set(SIMULATION_KEYS))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [simulate]; allowed: {list(SIMULATION_KEYS)}")
    table = dict(table)
    dts = table.get("dt")
    if isinstance(dts, list):  # a time-step study: one run per dt, a `dt` dimension
        if not dts:
            raise ScenarioError("[simulate] dt: a list needs at least one value")
        table["dt"] = dts[0]
    try:
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


SINGLE_POINT_TABLES = ("drive", "wigner", "detect")


def _single_point_variables(name: str) -> tuple[str, ...]:
    from .detection import DETECT_VARIABLES
    from .drive import DRIVE_VARIABLES
    from .wigner import WIGNER_VARIABLES

    return {"drive": DRIVE_VARIABLES, "wigner": WIGNER_VARIABLES, "detect": DETECT_VARIABLES}[name]


def _single_point_table(name: str, table, keys, params) -> dict | None:
    """Checks shared by [drive], [wigner], [detect]: a table of known keys, at one operating point."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ScenarioError(f"[{name}] must be a table")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [{name}]; allowed: {list(keys)}")
    if any(isinstance(v, list) for v in params.values()):
        raise ScenarioError(f"[{name}] runs one operating point: every [model] value must be a scalar")
    return dict(table)


def _parse_drive(table, simulation, dt_study, params, base: Path | None = None) -> dict | None:
    """[drive]: a time-dependent drive envelope (sde_com.drive.Drive fields, + mean_field_start, + file:
    a two-column text file of samples, relative to the scenario file, read into times/values)."""
    from .drive import DRIVE_KEYS, Drive, load_samples

    table = _single_point_table("drive", table, DRIVE_KEYS, params)
    if table is None:
        return None
    if simulation is None or not simulation.transient or dt_study:
        raise ScenarioError("[drive] needs a [simulate] transient (save_times or save_every) with a single dt")
    if table.get("mean_field_start", "empty") not in ("empty", "steady"):
        raise ScenarioError("drive.mean_field_start must be 'empty' or 'steady'")
    if "file" in table:
        if not isinstance(table["file"], str) or table.get("kind", "samples") != "samples" or "times" in table:
            raise ScenarioError("drive.file must be a path string, with kind = 'samples' and no times/values")
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
    from .wigner import WIGNER_KEYS

    table = _single_point_table("wigner", table, WIGNER_KEYS, params)
    if table is None:
        return None
    if simulation is None or simulation.method != "em" or simulation.transient or dt_study:
        raise ScenarioError("[wigner] needs a [simulate] table with method = 'em', a single dt and no snapshots")
    b = table.get("branch", 0)
    if isinstance(b, bool) or not isinstance(b, int) or b < 0:
        raise ScenarioError(f"wigner.branch must be an integer >= 0, got {b!r}")
    return dict(table)


def _parse_detect(table, simulation, dt_study, params) -> dict | None:
    """[detect]: homodyne records, output spectra and filtered-mode E_N at one operating point."""
    from .detection import DETECT_KEYS

    table = _single_point_table("detect", table, DETECT_KEYS, params)
    if table is None:
        return None
    if simulation is None or simulation.method != "em" or not simulation.traces or simulation.trace_every != 1 \
            or simulation.save_times is not None or dt_study:
        raise ScenarioError("[detect] needs a [simulate] table with method = 'em', traces >= 1 recorded at "
                            "every step (no save_times; save_every = dt or absent) and a single dt")
    if table.get("mode", "U") not in ("U", "V"):
        raise ScenarioError("detect.mode must be 'U' or 'V'")
    seg = table.get("segment", 1024)
    if isinstance(seg, bool) or not isinstance(seg, int) or seg < 16:
        raise ScenarioError(f"detect.segment must be an integer >= 16, got {seg!r}")
    bw = table.get("filter_bandwidths", [0.1, 0.3, 1.0, 3.0])
    if not isinstance(bw, list) or not bw or not all(
            not isinstance(b, bool) and isinstance(b, (int, float)) and b > 0 for b in bw):
        raise ScenarioError("detect.filter_bandwidths must be a non-empty list of numbers > 0 (units of ω_m)")
    for key in ("theta", "filter_center"):
        v = table.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ScenarioError(f"detect.{key} must be a finite number, got {v!r}")
    return dict(table)


def check_plot(plot: dict, params: dict, variables: tuple[str, ...] | None) -> None:
    """Validate [plot] against the run it will draw, so a bad figure spec fails before any work."""
    kind = plot.get("kind", "lines")
    if kind not in PLOT_KINDS:
        raise ScenarioError(f"plot.kind must be one of {PLOT_KINDS}, got {kind!r}")
    if kind in ("estimate", "matrix", "traces", "spectra"):
        return  # drawn from the simulation's own variables; checked when drawn
    dims = [k for k, v in params.items() if isinstance(v, list)]
    available = set(variables) if variables is not None else set(VARIABLE_INFO)
    for key in ("hue", "y", "panel_titles") if kind == "lines" else ():
        if key in plot and not (isinstance(plot[key], list) and all(isinstance(v, str) for v in plot[key])):
            raise ScenarioError(f"plot.{key} must be a list of names")
    names = []
    if kind == "lines":
        names += [("x", plot.get("x", "detuning"), dims)]
        names += [("y", y, available | set(dims)) for y in plot.get("y", ["logneg"])]
        names += [("hue", h, dims) for h in plot.get("hue", [])]
        if "panel" in plot:
            names.append(("panel", plot["panel"], dims))
    else:
        names += [("x", plot.get("x", "detuning"), dims), ("y", plot.get("y", "Omega"), dims),
                  ("variable", plot.get("variable", "coupling"), available)]
    for key, name, allowed in names:
        if name not in allowed:
            raise ScenarioError(f"plot.{key} = {name!r} is not in this run; allowed: {sorted(allowed)}")


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
    from .device import Device

    p = dict(scenario.parameters)
    detuning = float(p.pop("detuning", 1.0))
    direction = str(p.pop("direction", "ccw"))
    device = Device(**p)
    ds = run(device, detuning, direction)
    ds.attrs["parameters"] = json.dumps({**device.as_dict(), "detuning": detuning, "direction": direction})
    ds.attrs["simulation"] = json.dumps(settings_to_dict(scenario.simulation))
    if table_name is not None:
        ds.attrs[table_name] = json.dumps(getattr(scenario, table_name))
    ds.attrs["sde_com_version"] = __version__
    return ds


def _run_drive(scenario: Scenario) -> xr.Dataset:
    from .drive import Drive, simulate_drive

    table = dict(scenario.drive)
    start = table.pop("mean_field_start", "empty")
    drive = Drive(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in table.items()})
    return _run_single_point(scenario, lambda d, x, r: simulate_drive(d, x, r, drive, scenario.simulation,
                                                                      mean_field_start=start), "drive")


def _run_wigner(scenario: Scenario) -> xr.Dataset:
    from .wigner import wigner_dataset

    branch = scenario.wigner.get("branch", 0)
    return _run_single_point(scenario, lambda d, x, r: wigner_dataset(d, x, r, scenario.simulation, branch))


def _run_detect(scenario: Scenario) -> xr.Dataset:
    from .detection import detection_dataset

    t = scenario.detect
    return _run_single_point(scenario, lambda d, x, r: detection_dataset(
        d, x, r, scenario.simulation, t.get("mode", "U"), float(t.get("theta", 0.0)), int(t.get("segment", 1024)),
        tuple(t.get("filter_bandwidths", (0.1, 0.3, 1.0, 3.0))), float(t.get("filter_center", -1.0))), "detect")


def finish_dataset(scenario: Scenario, ds: xr.Dataset) -> xr.Dataset:
    """Keep the scenario's [output] variables and add the provenance attrs (scenario text, plot spec)."""
    wanted = scenario.variables
    if wanted is not None:
        ds = ds[[v for v in wanted if v in ds.data_vars]]
        ds = ds.drop_vars([c for c in ("row", "col") if c in ds.coords and "cov" not in ds.data_vars])
    ds.attrs["scenario"] = scenario.text
    ds.attrs["scenario_name"] = scenario.name
    ds.attrs["title"] = scenario.title
    if scenario.plot:
        ds.attrs["plot"] = json.dumps(scenario.plot)
    return ds

