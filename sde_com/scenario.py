"""Scenario files: TOML data (never code) → validated run plan → Dataset.

A scenario has a ``[model]`` table whose keys are sweep parameters (``sde_com.sweep.SWEEP_PARAMETERS``),
each a scalar, a list, or a range ``{start, stop, num}`` (num ≥ 1 points, both ends included); keys left
out take the paper's values. Optional: ``title``, ``description``, ``[output]`` (``variables``: which data
variables to keep) and ``[plot]`` (how ``sde-com plot`` draws it; see ``sde_com.plot``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .sweep import SWEEP_PARAMETERS, VARIABLE_INFO, sweep, validate_parameters

TOP_LEVEL_KEYS = ("title", "description", "model", "output", "plot")
RANGE_KEYS = ("start", "stop", "num")
OUTPUT_KEYS = ("variables",)
PLOT_KEYS = ("kind", "x", "y", "hue", "panel", "variable", "title", "panel_titles")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the offending key and what is allowed."""


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: sweep parameters, output selection, plot spec and the source text."""

    parameters: dict
    variables: tuple[str, ...] | None = None
    plot: dict = field(default_factory=dict)
    title: str = ""
    description: str = ""
    text: str = ""
    name: str = ""


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


def parse_scenario(text: str, name: str = "") -> Scenario:
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
    output = raw.get("output", {})
    unknown = sorted(set(output) - set(OUTPUT_KEYS))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [output]; allowed: {list(OUTPUT_KEYS)}")
    variables = output.get("variables")
    if variables is not None:
        bad = [v for v in variables if v not in VARIABLE_INFO]
        if bad or not variables:
            raise ScenarioError(f"output.variables: unknown {bad}; allowed: {list(VARIABLE_INFO)}")
        variables = tuple(variables)
    plot = raw.get("plot", {})
    unknown = sorted(set(plot) - set(PLOT_KEYS))
    if unknown:
        raise ScenarioError(f"unknown key(s) {unknown} in [plot]; allowed: {list(PLOT_KEYS)}")
    try:  # check values now (names the field), so a bad file fails before any work
        validate_parameters(params)
    except ValueError as exc:
        raise ScenarioError(f"[model] {exc}") from exc
    return Scenario(params, variables, plot, str(raw.get("title", "")), str(raw.get("description", "")),
                    text, name)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from exc
    return parse_scenario(text, name=path.name)


def run_scenario(scenario: Scenario) -> xr.Dataset:
    """Run the scenario's sweep and return the Dataset with the provenance attrs."""
    wanted = scenario.variables
    store_cov = wanted is None or "cov" in wanted
    revival = None if wanted is None else bool({"revival", "logneg_max"} & set(wanted))
    ds = sweep(store_cov=store_cov, revival=revival, **scenario.parameters)
    if wanted is not None:
        ds = ds[[v for v in wanted if v in ds.data_vars]]
        ds = ds.drop_vars([c for c in ("row", "col") if c in ds.coords and "cov" not in ds.data_vars])
    ds.attrs["scenario"] = scenario.text
    ds.attrs["scenario_name"] = scenario.name
    ds.attrs["title"] = scenario.title
    if scenario.plot:
        ds.attrs["plot"] = json.dumps(scenario.plot)
    return ds
