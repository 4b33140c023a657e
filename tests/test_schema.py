"""The scenario schema (sde_com.schema): one declaration per key, read by validation, messages, docs and editors.

Every key refuses a value of the wrong type, out of range or not among its choices, naming the key, the value
and what is allowed; the defaults it declares are the ones the code uses; the shipped JSON Schema is current
and accepts every shipped scenario.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import tomllib

import numpy as np
import pytest
from conftest import ROOT, SCENARIO_FILES

from sde_com import spec as specs
from sde_com.cli import main
from sde_com.physics.resonator.device import DIRECTIONS, Device
from sde_com.results.sweep import SWEEP_PARAMETERS, parameter_grid
from sde_com.runs import schema
from sde_com.runs.scenario import PLOT_KINDS, ScenarioError, parse_scenario, run_scenario
from sde_com.runs.schema import RATE, SCHEMA, TIME, TOP_LEVEL, Key, check_value, json_schema
from sde_com.simulation.drive import DRIVE_KEYS, DRIVE_KINDS, Drive
from sde_com.simulation.simulate import INITIAL_STATES, METHODS, SIMULATION_KEYS, SimulationSettings

SCENARIOS = list(SCENARIO_FILES.values())
ALL_KEYS = [(t, k) for t, table in SCHEMA.items() for k in table.keys]


def _toml(value) -> str:
    """A Python value as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _scenario(table: str, key: str, value) -> str:
    if SCHEMA[table].array:  # [[measure]]: on the single cavity's port
        return f'[system]\nname = "single_cavity"\n[[{table}]]\n{key} = {_toml(value)}\n'
    if table == "periodic":  # of a modulated oscillator
        return ('[system]\nmodes = ["m"]\ndrift = [[0.0, 1.0], [-1.0, -0.1]]\ndiffusion = [[0.1, 0.0], [0.0, 0.1]]\n'
                'modulation = { frequency = 1.5, drift_cos = [[0.0, 0.0], [-0.1, 0.0]] }\n'
                f'[periodic]\n{key} = {_toml(value)}\n')
    if table == "feedback":  # beside a detector of the single cavity, forcing its mechanics' momentum
        force = "" if key == "force" else 'force = ["p"]\n'
        return (f'[system]\nname = "single_cavity"\n[[measure]]\nmode = "a"\n[feedback]\n{force}'
                f'{key} = {_toml(value)}\n')
    return f"[{table}]\n{key} = {_toml(value)}\n"


def _label(table: str, key: str) -> str:
    """How a message names the key: table.key, or table[0].key in the first table of an array of tables."""
    return f"{table}[0].{key}" if SCHEMA[table].array else f"{table}.{key}"


def _wrong_types(key: Key) -> list:
    """Values of a type the key does not take (a TOML boolean is not a number; 2.5 is not an integer)."""
    types = key.types
    if "number" in types or "integer" in types:  # a number given as a string, unless a string is allowed too
        return [True, [1.0] if "string" in types else "1.0"] + ([2.5] if "integer" in types else [])
    if "boolean" in types:
        return [1, "true"]
    if "list[number]" in types:
        return [[True], 1.0]
    if "list[string]" in types and "string" not in types:
        return [[1], "x"]
    return [1, True]  # strings, string | matrix, string | list[string]


def _refused(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "test.toml")
    return str(info.value)


@pytest.mark.parametrize("table, key", ALL_KEYS, ids=[f"{t}.{k}" for t, k in ALL_KEYS])
def test_every_key_refuses_a_wrong_type_naming_it(table, key):
    spec = SCHEMA[table].keys[key]
    for value in _wrong_types(spec):
        message = _refused(_scenario(table, key, value))
        assert message.startswith(f"{_label(table, key)} must be "), message
        assert "got " + specs.show(value) in message, message
        assert specs.allowed(spec) in message


@pytest.mark.parametrize("key", list(TOP_LEVEL.keys))
def test_top_level_strings_refuse_other_types(key):
    assert _refused(f"{key} = 3\n") == f"{key} must be a string, got 3 (an integer)"


BOUNDED = [(t, k) for t, k in ALL_KEYS if SCHEMA[t].keys[k].minimum is not None]


@pytest.mark.parametrize("table, key", BOUNDED, ids=[f"{t}.{k}" for t, k in BOUNDED])
def test_every_bounded_key_refuses_a_value_out_of_range(table, key):
    spec = SCHEMA[table].keys[key]
    bad = spec.minimum if spec.exclusive_minimum else spec.minimum - 1
    bad = int(bad) if "integer" in spec.types else float(bad)
    value = [bad] if spec.types == ("list[number]",) else bad
    message = _refused(_scenario(table, key, value))
    bound = f"{'>' if spec.exclusive_minimum else '>='} {specs._number_text(spec.minimum)}"
    assert message.startswith(f"{_label(table, key)} must be ") and bound in message and repr(bad) in message, message
    if "list" in spec.forms:  # also inside a list of values
        assert bound in _refused(_scenario(table, key, [value, value]))
    if "range" in spec.forms:  # and at the end of a range
        text = f"[{table}]\n{key} = {{ start = {bad!r}, stop = 1.0, num = 2 }}\n"
        assert _refused(text).startswith(f"{table}.{key}.start must be {bound}")


CHOICES = [(t, k) for t, k in ALL_KEYS if SCHEMA[t].keys[k].choices]


@pytest.mark.parametrize("table, key", CHOICES, ids=[f"{t}.{k}" for t, k in CHOICES])
def test_every_string_key_refuses_a_value_not_among_its_choices(table, key):
    spec = SCHEMA[table].keys[key]
    message = _refused(_scenario(table, key, "nope"))
    assert message.startswith(f"{_label(table, key)} must be one of ") and "got 'nope'" in message
    assert all(repr(c) in message for c in spec.choices)


def test_messages_say_what_is_allowed_with_the_unit():
    message = _refused("[simulate]\ndt = true\n")
    assert message == ("simulate.dt must be > 0 (a finite real number, unit: 1/ω_ref), or a non-empty 1-D list of "
                       "them, got true (a boolean)")
    assert _refused("[simulate]\ntrajectories = 2.0\n") == ("simulate.trajectories must be >= 1 (an integer), got 2.0 "
                                                                 "(a float)")
    assert _refused("[simulate]\nallow_unstable = 1\n") == ("simulate.allow_unstable must be true or false, got 1 "
                                                                  "(an integer)")
    assert "model.mass.num must be >= 1 and <= 1000000 (an integer), got 0" in _refused(
        "[model]\nmass = { start = 1e-11, stop = 2e-11, num = 0 }\n")
    assert _refused("[detect]\nfilter_bandwidths = []\n") == (
        "detect.filter_bandwidths must be a non-empty list of finite real numbers >= 0.001 and <= 1000 (unit: "
        "ω_ref), got []")


def test_min_items_and_empty_lists():
    assert "a non-empty list" in _refused("[simulate]\nsave_times = []\n")
    assert "simulate.dt: a list needs at least one value" in _refused("[simulate]\ndt = []\n")


def test_python_objects_validate_from_the_same_specs():
    """The public settings objects check their fields against the schema when built from Python too."""
    with pytest.raises(ValueError, match=r"^trajectories must be >= 1 \(an integer\), got true \(a boolean\)$"):
        SimulationSettings(trajectories=True)
    with pytest.raises(ValueError, match=r"^allow_unstable must be true or false, got 1 \(an integer\)$"):
        SimulationSettings(allow_unstable=1)
    with pytest.raises(ValueError, match=r"^seed must be >= 0 and <= 9223372036854775807 \(an integer\), got"):
        SimulationSettings(seed=2**63)
    with pytest.raises(ValueError, match=r"^drive depth must be >= -1000 and <= 1000 \(a finite real number\), "
                                         r"got nan$"):
        Drive(depth=float("nan"))
    with pytest.raises(ValueError, match=r"^drive width must be > 0"):  # for every kind: it sets the ODE step
        Drive(kind="constant", width=0.0)
    with pytest.raises(ValueError, match="mass must be > 0, got -1.0"):
        Device(mass=-1.0)
    # numpy scalars and arrays are what Python callers pass
    s = SimulationSettings(trajectories=np.int64(4), dt=np.float64(0.05), duration=1.0, seed=np.uint32(3),
                           initial=0.5 * np.eye(6), save_times=np.array([0.0, 0.5]))
    assert s.save_times == (0.0, 0.5) and s.initial.shape == (6, 6)
    check_value(SCHEMA["simulate"].keys["initial"], [[0.5] * 6] * 6)


def test_schema_keys_are_the_codes_keys():
    assert tuple(SCHEMA["model"].keys) == SWEEP_PARAMETERS
    assert SIMULATION_KEYS == tuple(f.name for f in dataclasses.fields(SimulationSettings))
    assert set(DRIVE_KEYS) == {f.name for f in dataclasses.fields(Drive)} | {"file", "mean_field_start"}
    assert SCHEMA["simulate"].keys["method"].choices == METHODS
    assert SCHEMA["simulate"].keys["initial"].choices == INITIAL_STATES
    assert SCHEMA["drive"].keys["kind"].choices == DRIVE_KINDS
    assert SCHEMA["model"].keys["direction"].choices == DIRECTIONS
    assert SCHEMA["plot"].keys["kind"].choices == PLOT_KINDS


def test_plot_keys_chosen_from_the_output_declare_no_default():
    """[plot] kind, x, y and variable are chosen from the output (sde_com.plotspec), not fixed values: the
    schema declares none (it once said kind 'lines', map variable 'coupling' and map y 'Omega')."""
    from sde_com.runs.plotspec import resolve_spec

    keys = SCHEMA["plot"].keys
    for name in ("kind", "x", "y", "variable"):
        assert keys[name].default is None, name
        assert "chosen from the output" in keys[name].doc, name
    assert "default" not in json_schema()["properties"]["plot"]["properties"]["kind"]
    sizes = {"detuning": 30, "Omega": 30, "branch": 1}
    dims = ("detuning", "Omega", "branch")
    spec = resolve_spec({}, sizes, {"coupling": dims, "logneg": dims})
    assert spec["kind"] == "map" and spec["variable"] == "logneg"  # not the old documented 'coupling'


def test_time_rule_every_time_and_frequency_in_units_of_the_reference_rate():
    times = {("simulate", k) for k in ("dt", "burn_in", "duration", "save_times", "save_every")}
    times |= {("drive", k) for k in ("start", "rise_time", "width", "times")}
    rates = {("drive", "frequency"), ("detect", "filter_bandwidths"), ("detect", "filter_center")}
    assert {(t, k) for t, k in ALL_KEYS if SCHEMA[t].keys[k].unit == TIME} == times
    assert {(t, k) for t, k in ALL_KEYS if SCHEMA[t].keys[k].unit == RATE} == rates


# Defaults: the schema's are the code's -------------------------------------------------------------------------


def test_settings_objects_take_their_defaults_from_the_schema():
    s = SimulationSettings()
    for k, key in SCHEMA["simulate"].keys.items():
        assert getattr(s, k) == key.default, k
    d = Drive()
    for f in dataclasses.fields(Drive):
        assert getattr(d, f.name) == SCHEMA["drive"].keys[f.name].default, f.name
    device = Device()
    for name in device.as_dict():
        assert getattr(device, name) == SCHEMA["model"].keys[name].default, name


def test_model_defaults_are_the_sweeps():
    values = parameter_grid({})[0]
    for name, key in SCHEMA["model"].keys.items():
        assert values[name][0] == key.default, name


def test_function_defaults_are_the_schemas():
    from sde_com.resonator import simulate_drive
    from sde_com.simulation.detection import detection_dataset
    from sde_com.simulation.drive import drive, drive_dataset
    from sde_com.simulation.wigner import truncated_wigner_arrays, wigner_check, wigner_dataset

    params = inspect.signature(detection_dataset).parameters
    for k, key in SCHEMA["detect"].keys.items():
        assert params[k].default == key.default, k
    assert params["filter_center"].default == -1.0  # the Stokes sideband: once 0.0 in a check, -1.0 where run
    for fn in (wigner_dataset, truncated_wigner_arrays, wigner_check):
        assert inspect.signature(fn).parameters["branch"].default == schema.default("wigner", "branch")
    for fn in (simulate_drive, drive, drive_dataset):
        assert inspect.signature(fn).parameters["mean_field_start"].default == schema.default(
            "drive", "mean_field_start")


def test_minimal_scenario_takes_the_schemas_defaults():
    sc = parse_scenario("[simulate]\n")
    assert sc.title == TOP_LEVEL.keys["title"].default and sc.description == TOP_LEVEL.keys["description"].default
    assert sc.parameters == {} and sc.variables is None and sc.plot == {}
    assert sc.simulation == SimulationSettings(**schema.defaults("simulate"))


SIM_EM = "[simulate]\nmethod = \"em\"\ndt = 0.01\nduration = 1.0\ntrajectories = 2\ntraces = 2\n"


class _Called(Exception):
    pass


def _capture(monkeypatch, module, name):
    """Replace module.name by a function that records its arguments and stops the run."""
    def fake(*args, **kwargs):
        raise _Called(args, kwargs)

    monkeypatch.setattr(module, name, fake)


@pytest.mark.parametrize("given", ["", "filter_center = -1.0\n"], ids=["absent", "explicit"])
def test_detect_runs_with_the_schemas_defaults(monkeypatch, given):
    """Absent [detect] keys run with the schema's defaults (filter_center once disagreed: 0.0 vs -1.0)."""
    import sde_com.simulation.detection

    _capture(monkeypatch, sde_com.simulation.detection, "detection_dataset")
    with pytest.raises(_Called) as info:
        run_scenario(parse_scenario(SIM_EM + "[detect]\n" + given))
    system, params, settings, mode, partner, theta, segment, bandwidths, center = info.value.args[0]
    assert system.name == "spinning_resonator" and params == {}  # [model] absent: the system's defaults
    d = schema.defaults("detect")
    assert (mode, theta, segment, bandwidths, center, partner) == (d.get("mode"), d["theta"], d["segment"],
                                                                   d["filter_bandwidths"], d["filter_center"],
                                                                   d.get("partner"))
    assert center == -1.0


def test_wigner_and_drive_run_with_the_schemas_defaults(monkeypatch):
    import sde_com.simulation.drive
    import sde_com.simulation.wigner

    _capture(monkeypatch, sde_com.simulation.wigner, "wigner_dataset")
    with pytest.raises(_Called) as info:
        run_scenario(parse_scenario("[simulate]\nmethod = \"em\"\ndt = 0.01\nduration = 1.0\n[wigner]\n"))
    assert info.value.args[0][-1] == schema.default("wigner", "branch")
    _capture(monkeypatch, sde_com.simulation.drive, "drive_dataset")
    with pytest.raises(_Called) as info:
        run_scenario(parse_scenario("[simulate]\nduration = 1.0\nsave_every = 0.5\ninitial = \"thermal\"\n[drive]\n"))
    args, kwargs = info.value.args
    assert args[2] == Drive() and kwargs["mean_field_start"] == schema.default("drive", "mean_field_start")


# Exports: JSON Schema for editors, Markdown for the docs ------------------------------------------------------


def test_shipped_json_schema_is_current():
    """sde_com/scenario.schema.json is what json_schema() says (regenerate: sde-com schema -o ... --force)."""
    assert schema.SCHEMA_FILE.read_text(encoding="utf-8") == schema.json_schema_text()
    assert json.loads(schema.SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema()


def test_taplo_associates_the_scenarios_with_the_schema():
    config = tomllib.loads((ROOT / ".taplo.toml").read_text(encoding="utf-8"))
    (rule,) = config["rule"]
    assert rule["include"] == ["scenarios/*.toml"]
    assert (ROOT / rule["schema"]["path"]).resolve() == schema.SCHEMA_FILE.resolve()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_satisfy_the_json_schema(path):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft7Validator.check_schema(json_schema())
    jsonschema.Draft7Validator(json_schema()).validate(tomllib.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("text", ["[model]\nmass = -1.0\n", "[model]\nJ = true\n", "[model]\ndirection = \"up\"\n",
                                  "[model]\nJ = { start = 0.0, stop = 1.0, num = 0 }\n", "[modle]\n",
                                  "[simulate]\ndt = 0.0\n", "[simulate]\nspeed = 1\n", "[detect]\nsegment = 8\n",
                                  "[plot]\nkind = \"bar\"\n"])
def test_json_schema_refuses_what_validation_refuses(text):
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(ScenarioError):
        parse_scenario(text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json_schema()).validate(tomllib.loads(text))


def test_json_schema_carries_docs_defaults_and_bounds():
    s = json_schema()
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#" and s["additionalProperties"] is False
    dt = s["properties"]["simulate"]["properties"]["dt"]
    assert dt["default"] == 0.1 and dt["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0.0}
    assert "1/ω_ref" in dt["description"]
    mass = s["properties"]["model"]["properties"]["mass"]
    assert [a["type"] for a in mass["anyOf"]] == ["number", "array", "object"]
    assert s["properties"]["model"]["properties"]["direction"]["anyOf"][0]["enum"] == list(DIRECTIONS)
    assert s["properties"]["detect"]["properties"]["filter_center"]["default"] == -1.0


def test_cli_schema_prints_or_writes_the_json_schema(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
    out = tmp_path / "scenario.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json_schema()
    assert main(["schema", "-o", str(out)]) == 2  # never overwritten without --force
    assert "--force" in capsys.readouterr().err
    assert main(["schema", "-o", str(out), "--force"]) == 0


def test_reference_markdown_documents_every_key():
    text = schema.scenario_reference_markdown()
    assert schema.TIME_RULE in text.split("\n\n")[1]  # stated at the top
    for name, table in SCHEMA.items():
        assert (f"## `[[{name}]]`" if table.array else f"## `[{name}]`") in text
        for key in table.keys:
            assert f"| `{key}` |" in text, key
    assert "| `dt` | number or list | 1/ω_ref | `0.1` | > 0 |" in text
    assert "| `filter_center` | number | ω_ref | `-1` |" in text
