"""The scenario schema: every table and key of a scenario file, with its type, unit, default, allowed values
and a one-line doc. Validation (``sde_com.runs.scenario``, and the settings objects built from Python), the error
messages, the JSON Schema for editors (``json_schema``, shipped as ``scenario.schema.json``) and the docs'
scenario reference (``scenario_reference_markdown``) all read it: a key, its range and its default are written
here once. The [model] keys are the system's parameters (``SpinningResonator.parameters``: unit, name, range
and default from the device).

The time rule (``TIME_RULE``): the times of the [simulate], [drive] and [detect] tables are in units of
1/ω_ref and their frequencies in units of ω_ref, the system's reference rate (ω_m for the spinning
resonator); the units ``TIME`` and ``RATE`` mark such keys. [model] parameters are SI (rates in rad s-1).

A plain-dataclass schema rather than pydantic: pydantic (2.x) adds a dependency and ~0.1 s to the start-up
(about 20 % of ``import numpy, numba, xarray``), and its generated JSON Schema would need rewriting for the
[model] value forms and the messages anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from sde_com import spec
from sde_com.errors import ScenarioError
from sde_com.physics.feedback import FEEDBACK
from sde_com.physics.floquet import PERIODIC
from sde_com.physics.hamiltonian import HAMILTONIAN_KEYS
from sde_com.physics.matrix import MODULATION_KEY
from sde_com.physics.measurement import MEASURE
from sde_com.physics.system import builtin_systems, get_system
from sde_com.results.sweep import DEFAULT_SYSTEM
from sde_com.simulation.keys import TABLES as SIMULATION_TABLES
from sde_com.spec import (
    RANGE,
    RATE,
    TIME,
    Key,
    Table,
    bounds_text,
    check_value,
    make_table,
    show,
    unit_text,
)

TIME_RULE = ("Every time given in the [simulate], [drive] and [detect] tables is in units of 1/ω_ref, and every "
             "frequency there in units of ω_ref, the system's reference rate (ω_m, the mechanical angular "
             "frequency, for the spinning resonator); [model] parameters are SI, with rates in rad s-1.")
SCHEMA_FILE = Path(__file__).parents[1] / "scenario.schema.json"  # shipped at the package root


TOP_LEVEL = make_table(
    "", "The top level of a scenario file: two strings, then the tables below.",
    Key("title", "string", "one-line title, kept in the output's attrs and drawn over the figure", default=""),
    Key("description", "string", "what the scenario is for (the whole scenario text is kept in the output)",
        default=""),
)

_TABLES: dict[str, Table] = {t.name: t for t in (
    make_table("model", "The operating point: each key a scalar, a list (a sweep dimension, in file order) or a "
                    "range {start, stop, num}; keys left out take the paper's values. Rates in rad s-1 (SI).",
           *get_system(DEFAULT_SYSTEM).parameters.values()),
    make_table(
        "system", "The system a scenario runs (absent: the spinning resonator). One of three: `name`, a "
                  "registered system whose parameters [model] then holds; a `hamiltonian` with `dissipators` "
                  "(``sde_com.HamiltonianSystem``: the map is in Physics, from a Hamiltonian), whose `parameters` "
                  "[model] then sets or sweeps; or a linear system given by its matrices instead of [model] "
                  "(``sde_com.MatrixSystem``): du = A u dt + dW, E[dW dWᵀ] = D dt, u in (x, p) pairs "
                  "per mode in the order of `modes`, vacuum variance 1/2. Steady state (no [simulate]), "
                  "time-domain runs, with output ports (a named system's, a `port` dissipator, or `outputs`) "
                  "[detect], with nonlinear mean-field dynamics (the built-in systems) [drive]; [wigner] runs the "
                  "spinning resonator only.",
        Key("name", "string", "a registered system: 'spinning_resonator', 'single_cavity' (see Single-cavity "
                              "optomechanics), or an installed plug-in's entry-point name; instead of the "
                              "matrices"),
        Key("modes", "list[string]", "the N mode names (the Hamiltonian's, or in the order of the matrices' (x, p) "
                                     "pairs)", min_items=1),
        *HAMILTONIAN_KEYS,
        Key("drift", "matrix", "A, 2N × 2N (list of rows), s-1"),
        Key("diffusion", "matrix", "D, 2N × 2N (list of rows), symmetric positive semidefinite, s-1"),
        Key("time_scale", "number | string", "ω_ref, the unit of the run's times (1/ω_ref) and frequencies: a "
                                             "rate, or (a Hamiltonian system) an expression of its parameters; "
                                             "absent: the spectral radius max |λ| of A, the system's fastest rate",
            "s-1", minimum=0.0, exclusive_minimum=True),
        Key("allow_unstable", "boolean", "accept an unstable A (a transient from a given initial state)",
            default=False),
        MODULATION_KEY,
        Key("outputs", "table[number]", "output ports: mode name = amplitude decay rate κ into the detected port "
                                        "(a_out = √(2κ) a − a_in: the mode's energy leaks into it at 2κ; D must hold "
                                        "the port's vacuum noise, κ on each of the mode's quadratures); enables "
                                        "[detect]", "s-1", minimum=0.0,
            exclusive_minimum=True, min_items=1),
    ),
    *SIMULATION_TABLES,  # [simulate], [drive], [wigner], [detect]: declared by sde_com.simulation.keys
    MEASURE,  # [[measure]]: declared by sde_com.physics.measurement
    FEEDBACK,  # [feedback]: declared by sde_com.physics.feedback
    PERIODIC,  # [periodic]: declared by sde_com.physics.floquet
    make_table(
        "output", "Which data variables the output keeps.",
        Key("variables", "list[string]", "keep only these data variables (names from the run's output "
                                         "variables; absent: all)", min_items=1),
    ),
    make_table(
        "plot", "How `sde-com plot` draws the output (checked against the run before any work). Keys left out "
                "are chosen from the output: one swept parameter → lines over it; two → lines over the one with "
                "more values, one line per value of the other when it has at most 6 values (e.g. direction), "
                "else a map of the first preferred variable (logneg, logneg_max, revival, coupling, ...); "
                "time-domain runs → the estimate over time or dt, the z-score matrix, the traces or the spectra.",
        Key("kind", "string", "'lines' (x, y, hue, panel), 'map' (x, y, variable); for time-domain runs "
                              "'estimate', 'matrix', 'traces', 'spectra' (absent: chosen from the output, see "
                              "the defaults above)",
            choices=("lines", "map", "estimate", "matrix", "traces", "spectra")),
        Key("x", "string", "x axis: a swept parameter (lines, map), or 'time' (= 'time_scaled', drawn as "
                           "ω_ref·t) / 'dt' (estimate, lines); absent: chosen from the output (lines, map: the "
                           "parameter with the most values)", only_with=("lines", "map", "estimate")),
        Key("y", "string | list[string]", "lines: the variables drawn, one panel each; map: the swept parameter "
                                          "on the y axis; traces: the quadratures; absent: chosen from the output",
            min_items=1, only_with=("lines", "map", "traces")),
        Key("hue", "list[string]", "lines: dimensions told apart by colour and style (absent: every dimension "
                                   "not placed on x or panel)", only_with=("lines",)),
        Key("panel", "string", "lines: a swept parameter, one panel per value", only_with=("lines",)),
        Key("variable", "string", "map, estimate, matrix: the variable drawn (absent: chosen from the output)",
            only_with=("map", "estimate", "matrix")),
        Key("title", "string", "figure title (default: the scenario's title)"),
        Key("panel_titles", "list[string]", "lines: one title per panel", only_with=("lines",)),
    ),
)}
SCHEMA: Mapping[str, Table] = MappingProxyType(_TABLES)  # the scenario's tables by name (read-only view)


def register_table(table: Table) -> Table:
    """Add a scenario table (a plug-in run kind's own: ``runs.kinds.register_run_kind``) to the schema that
    validation, the JSON Schema and the reference read. TypeError for a name that is taken."""
    if table.name in _TABLES or table.name in TOP_LEVEL.keys:
        raise TypeError(f"scenario table [{table.name}] is already in the schema")
    _TABLES[table.name] = table
    return table


def top_level_keys() -> tuple[str, ...]:
    """The keys a scenario may have at its top level: title, description and every table of the schema."""
    return (*TOP_LEVEL.keys, *_TABLES)


def default(table: str, key: str):
    """The default of ``[table] key``: what the code uses when the key is absent."""
    return SCHEMA[table].keys[key].default


def defaults(table: str) -> dict:
    """Every key of ``table`` that has a default, with it."""
    return {k.name: k.default for k in SCHEMA[table].keys.values() if k.default is not None}


def check_keys(name: str, table, error: type[ValueError] = ScenarioError, schema: Table | None = None) -> dict:
    """``[name]`` must be a table of known keys (``schema``: its Table, default the scenario schema's);
    returns it."""
    if not isinstance(table, dict):
        raise error(f"[{name}] must be a table, got {show(table)}")
    keys = (schema or SCHEMA[name]).keys
    unknown = [k for k in table if k not in keys]
    if name != "model":
        unknown.sort()
    if unknown:
        raise error(f"unknown key(s) {unknown} in [{name}]; allowed: {list(keys)}")
    return table


def check_table(name: str, table, error: type[ValueError] = ScenarioError, schema: Table | None = None) -> dict:
    """Check ``[name]`` against the schema (``schema``: its Table, default the scenario schema's; [model] of a
    named system: its parameters): a table, known keys, each value's type, range and choices (in the forms the
    key allows). Messages name the key as ``name.key``. Returns the table."""
    spec_table = schema or SCHEMA[name]
    if spec_table.array:  # [[name]]: a non-empty list of tables, each checked as one (name[i].key)
        if not isinstance(table, list) or not table:
            raise error(f"[[{name}]] must be one or more tables ([[{name}]] blocks), got {show(table)}")
        for i, item in enumerate(table):
            check_table(f"{name}[{i}]", item, error, replace(spec_table, array=False))
        return table
    check_keys(name, table, error, spec_table)
    for k, v in table.items():
        key = spec_table.keys[k]
        check_value(key, v, f"{name}.{k}", forms=key.forms, error=error)
    return table


def check_kind_keys(name: str, table: dict, error: type[ValueError] = ScenarioError, kind: str | None = None) -> None:
    """A key that means something only under some values of the table's ``kind`` (``Key.only_with``) is
    refused under another, rather than silently ignored (checked once the table's kind is settled: a
    [drive] ``file`` implies 'samples'; ``kind``: the kind in force when the table leaves it out)."""
    keys = SCHEMA[name].keys
    if "kind" not in keys:
        return
    kind = table.get("kind", kind if kind is not None else keys["kind"].default)
    for k in table:
        only = keys[k].only_with
        if only and kind not in only:
            raise error(f"{name}.{k} has no meaning with kind = {kind!r}; it applies to kind = "
                        + " or ".join(repr(c) for c in only))


def check_top_level(raw: dict, error: type[ValueError] = ScenarioError) -> None:
    """Known top-level keys, and the types of title and description."""
    allowed = top_level_keys()
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise error(f"unknown top-level key(s) {unknown}; allowed: {list(allowed)}")
    for k, key in TOP_LEVEL.keys.items():
        if k in raw:
            check_value(key, raw[k], error=error)


def check_fields(obj, table: str, prefix: str = "") -> None:
    """Check a settings object's fields against ``[table]`` (see ``sde_com.spec.check_fields``)."""
    spec.check_fields(obj, SCHEMA[table], prefix)


# Exports: JSON Schema, Markdown reference ------------------------------------------------------------------


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def _bounds_json(key: Key) -> dict:
    out = {}
    if key.minimum is not None:
        out["exclusiveMinimum" if key.exclusive_minimum else "minimum"] = key.minimum
    if key.maximum is not None:
        out["exclusiveMaximum" if key.exclusive_maximum else "maximum"] = key.maximum
    return out


def _type_json(key: Key, t: str) -> dict:
    if t in ("number", "integer"):
        return {"type": t, **_bounds_json(key)}
    if t == "boolean":
        return {"type": "boolean"}
    if t == "string":
        return {"type": "string", **({"enum": list(key.choices)} if key.choices else {})}
    if t == "matrix":
        return {"type": "array", "minItems": 1,
                "items": {"type": "array", "items": {"type": "number", **_bounds_json(key)}}}
    if t == "table[string]":
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if t == "table[number]":
        out = {"type": "object", "additionalProperties": {"type": "number", **_bounds_json(key)}}
        return {**out, "minProperties": key.min_items} if key.min_items else out
    if t == "list[table]":
        return {"type": "array", "items": _table_json(key.items)}
    if t == "table":
        return _table_json(key.items)
    out = {"type": "array", "items": _type_json(key, t[len("list["):-1])}
    return {**out, "minItems": key.min_items} if key.min_items else out


def _description(key: Key) -> str:
    unit = unit_text(key.unit)
    text = key.doc + (f" [unit: {unit}]" if unit else "")
    if key.unit in (TIME, RATE):
        text += " (ω_ref = ω_m for the spinning resonator)"
    if key.only_with:
        text += " (only with kind = " + " or ".join(repr(c) for c in key.only_with) + ")"
    return text


def _key_json(key: Key) -> dict:
    alternatives = [_type_json(key, t) for t in key.types]
    if "list" in key.forms:
        alternatives.append({"type": "array", "minItems": 1, "items": alternatives[0]})
    if "range" in key.forms:
        alternatives.append({
            "type": "object", "description": RANGE.doc, "additionalProperties": False,
            "required": list(RANGE.keys),
            "properties": {"start": alternatives[0], "stop": alternatives[0],
                           "num": _type_json(RANGE.keys["num"], "integer")}})
    out = {"description": _description(key)}
    out.update(alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives})
    if key.default is not None:
        out["default"] = _jsonable(key.default)
    return out


def _table_json(table: Table) -> dict:
    out = {"type": "object", "description": table.doc, "additionalProperties": False,
           "properties": {k: _key_json(key) for k, key in table.keys.items()}}
    if table.array:  # [[name]]
        return {"type": "array", "description": table.doc, "minItems": 1, "items": out}
    return out


def json_schema() -> dict:
    """The JSON Schema (draft-07) of a scenario file, for editors (Taplo / Even Better TOML) and checkers."""
    properties = {k: _key_json(key) for k, key in TOP_LEVEL.keys.items()}
    properties.update({name: _table_json(table) for name, table in SCHEMA.items()})
    model = properties["model"]  # any built-in system's parameters (the one [system] names is checked on load)
    for cls in builtin_systems():
        for key in cls.parameters.values():
            model["properties"].setdefault(key.name, _key_json(key))
    # a [system] by Hamiltonian names its own parameters: any name then, a number, a list or a range of them;
    # else only the built-in systems' names
    model["additionalProperties"] = _key_json(Key("parameter", "number", "a parameter of the [system] Hamiltonian",
                                                  forms=("list", "range")))
    known = {"properties": {"model": {"propertyNames": {"enum": sorted(model["properties"])}}}}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "sde_com scenario",
        "description": "A scenario file of sde_com (TOML). " + TIME_RULE,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "if": {"required": ["system"], "properties": {"system": {"required": ["hamiltonian"]}}},
        "else": known,
    }


def json_schema_text() -> str:
    """``json_schema()`` as the text of the shipped ``scenario.schema.json`` (and of ``sde-com schema``)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _type_doc(key: Key) -> str:
    words = {"list[string]": "list of strings", "list[number]": "list of numbers", "table[number]": "table of numbers",
             "table[string]": "table of strings",
             "list[table]": "list of tables", "table": "table"}
    text = " or ".join(words.get(t, t) for t in key.types)
    if "range" in key.forms:
        return f"{text}, list or range"
    return f"{text} or list" if "list" in key.forms else text


def _allowed_doc(key: Key) -> str:
    parts = []
    if key.choices:
        parts.append(", ".join(f"`{json.dumps(c)}`" for c in key.choices))
    if bounds_text(key):
        parts.append(bounds_text(key))
    if key.min_items:
        parts.append(f"at least {key.min_items} item{'s' if key.min_items > 1 else ''}")
    if key.only_with:
        parts.append("only with kind = " + " or ".join(f"`{json.dumps(c)}`" for c in key.only_with))
    return "; ".join(parts)


def _default_doc(key: Key) -> str:
    if key.default is None:
        return ""
    v = _jsonable(key.default)
    if isinstance(v, float):
        return f"`{v:.12g}`"
    return f"`{json.dumps(v, ensure_ascii=False)}`"  # TOML writes strings, booleans and lists alike


def markdown_table(table: Table) -> list[str]:
    """The Markdown table of a table's keys: type, unit, default, allowed values and meaning (the docs' references)."""
    lines = ["| key | type | unit | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for key in table.keys.values():
        cells = [f"`{key.name}`", _type_doc(key), unit_text(key.unit) or key.unit, _default_doc(key),
                 _allowed_doc(key), key.doc]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def scenario_reference_markdown() -> str:
    """The docs' scenario reference (Markdown): every table and key with type, unit, default, range and doc."""
    lines = ["# Scenario reference", "",
             f"**Time rule.** {TIME_RULE} See [the time rule](../physics.md#the-time-rule).", "",
             "A scenario is a TOML file; an unknown key, a value of the wrong type (a TOML boolean is not a number) "
             "or out of range stops the run with a message naming the key (`simulate.dt`) and what is allowed. "
             "An empty default means that the key is absent unless given (see its meaning).", "",
             "## Top level", "", TOP_LEVEL.doc, "", *markdown_table(TOP_LEVEL), ""]
    for name, table in SCHEMA.items():
        heading = f"[[{name}]]" if table.array else f"[{name}]"
        lines += [f"## `{heading}`", "", table.doc, "", *markdown_table(table), ""]
        if name == "model":
            lines += ["### Ranges", "", RANGE.doc, "", *markdown_table(RANGE), ""]
        for key in table.keys.values():  # the tables of a list of tables: [[system.dissipators]]
            if key.items is not None:
                heading = f"[{name}.{key.name}]" if key.type == "table" else f"[[{name}.{key.name}]]"
                lines += [f"### `{heading}`", "", key.items.doc, "", *markdown_table(key.items), ""]
    return "\n".join(lines)
