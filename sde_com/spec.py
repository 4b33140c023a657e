"""The vocabulary of declarative parameter specs: a ``Key`` (type, unit, default, allowed range or
choices, doc) and a ``Table`` of keys, with the checks that read them. A leaf module: every layer declares
its own keys with it (the system's parameters, the [simulate], [drive], [wigner], [detect] tables), and
``sde_com.runs.schema`` assembles them into the scenario schema, its JSON Schema and its reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np

from sde_com.errors import UserError

TIME = "1/omega_ref"  # unit of a run time ([simulate], [drive], [detect]): 1/ω_ref (1/ω_m here)
RATE = "omega_ref"  # unit of a run frequency ([drive], [detect]): ω_ref (ω_m here)
UNIT_TEXT = {TIME: "1/ω_ref", RATE: "ω_ref", "1": "", "": ""}  # how a unit is written in messages and docs
TYPES = ("number", "integer", "boolean", "string", "list[number]", "list[string]", "matrix", "table[number]",
         "table[string]", "list[table]", "table")


@dataclass(frozen=True)
class Key:
    """One key of a scenario table.

    type: one of ``TYPES`` or a union of them ("string | matrix"); a number is finite and never a boolean.
    unit: a UDUNITS string, ``TIME`` or ``RATE`` ("" for strings, "1" for pure numbers).
    default: the value the code uses when the key is absent (None: absent means "not given", see doc).
    minimum/maximum (exclusive_*: strict): bounds of a number, or of each number of a list or matrix.
    choices: the allowed strings.   min_items: the shortest allowed list.
    forms: other forms a scenario may give: "list" (several values: a sweep dimension or a study),
        "range" ({start, stop, num}, num points with both ends included).
    only_with: the values of the table's ``kind`` under which the key means something (empty: any); given
        under another kind it is refused rather than ignored.
    items: the ``Table`` each item of a "list[table]", or the one "table", has (its keys: ``check_items``).
    """

    name: str
    type: str
    doc: str
    unit: str = ""
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple = ()
    min_items: int = 0
    forms: tuple[str, ...] = ()
    only_with: tuple[str, ...] = ()
    items: Table | None = None

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.type.split(" | "))


@dataclass(frozen=True)
class Table:
    """A table of a scenario file: its keys in order, and what it is for."""

    name: str
    doc: str
    keys: Mapping[str, Key]
    array: bool = False  # an array of tables, [[name]]: a list of such tables, each checked as one


def make_table(name: str, doc: str, *keys: Key, array: bool = False) -> Table:
    return Table(name, doc, MappingProxyType({k.name: k for k in keys}), array)


RANGE = make_table(
    "range", "A range of a [model] value, { start = ..., stop = ..., num = ... }: num evenly spaced points "
             "from start to stop, both included (numpy.linspace).",
    Key("start", "number", "first point (in the unit of the [model] key)"),
    Key("stop", "number", "last point (in the unit of the [model] key)"),
    Key("num", "integer", "number of points (at most 1e6 a range: its values are held as a list)", "1", minimum=1,
        maximum=1_000_000),
)


# Checks ----------------------------------------------------------------------------------------------------


def _is_number(v) -> bool:
    return (not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))
            and math.isfinite(v))


def _is_integer(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, np.integer))


def _is_sequence(v) -> bool:
    return isinstance(v, (list, tuple)) or isinstance(v, np.ndarray) and v.ndim == 1


def _in_bounds(key: Key, v) -> bool:
    lo, hi = key.minimum, key.maximum
    if lo is not None and not (v > lo if key.exclusive_minimum else v >= lo):
        return False
    return hi is None or (v < hi if key.exclusive_maximum else v <= hi)


def _matches(key: Key, t: str, v) -> bool:
    """Does v have type t (one of TYPES) and lie within the key's range and choices?"""
    if t in ("number", "integer"):
        return (_is_number(v) if t == "number" else _is_integer(v)) and _in_bounds(key, v)
    if t == "boolean":
        return isinstance(v, (bool, np.bool_))
    if t == "string":
        return isinstance(v, str) and (not key.choices or v in key.choices)
    if t == "matrix":
        rows = list(v) if isinstance(v, np.ndarray) and v.ndim == 2 else v
        return isinstance(rows, (list, tuple)) and len(rows) > 0 and all(
            _is_sequence(r) and all(_is_number(x) and _in_bounds(key, x) for x in r) for r in rows)
    if t == "table[string]":  # names → strings (e.g. parameter → unit)
        return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
    if t == "table[number]":  # names → numbers (e.g. mode → rate)
        return isinstance(v, dict) and len(v) >= key.min_items and all(
            isinstance(k, str) and _is_number(x) and _in_bounds(key, x) for k, x in v.items())
    if t == "list[table]":  # each table's keys: check_items
        return _is_sequence(v) and len(v) >= key.min_items and all(isinstance(x, dict) for x in v)
    if t == "table":  # its keys: check_items
        return isinstance(v, dict)
    item = t[len("list["):-1]
    return _is_sequence(v) and len(v) >= key.min_items and all(_matches(key, item, x) for x in v)


def _number_text(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def bounds_text(key: Key) -> str:
    parts = []
    if key.minimum is not None:
        parts.append(f"{'>' if key.exclusive_minimum else '>='} {_number_text(key.minimum)}")
    if key.maximum is not None:
        parts.append(f"{'<' if key.exclusive_maximum else '<='} {_number_text(key.maximum)}")
    return " and ".join(parts)


def unit_text(unit: str | None) -> str:
    """A unit as written in messages and docs: TIME → '1/ω_ref', RATE → 'ω_ref', '1' → ''."""
    return UNIT_TEXT.get(unit or "", unit or "")


def _type_text(key: Key, t: str) -> str:
    bounds, unit = bounds_text(key), unit_text(key.unit)
    if t == "string":
        return "one of " + ", ".join(repr(c) for c in key.choices) if key.choices else "a string"
    if t == "boolean":
        return "true or false"
    if t == "matrix":
        return "a matrix (a list of rows of " + " ".join(filter(None, ["finite real numbers", bounds])) + ")"
    if t == "table[string]":
        return "a table of names = strings"
    if t == "table[number]":
        return "a table of names = " + " ".join(filter(None, ["finite real numbers", bounds])) + (
            f" (unit: {unit})" if unit else "")
    if t == "list[table]":
        return "a list of tables (keys: " + ", ".join(key.items.keys) + ")"
    if t == "table":
        return "a table (keys: " + ", ".join(key.items.keys) + ")"
    if t.startswith("list["):
        item = "strings" if t == "list[string]" else " ".join(filter(None, ["finite real numbers", bounds]))
        size = "" if key.min_items == 0 else "non-empty " if key.min_items == 1 else f"{key.min_items}+ "
        return f"a {size}list of {item}" + (f" (unit: {unit})" if unit else "")
    what = "a finite real number" if t == "number" else "an integer"
    if bounds:
        return f"{bounds} ({what}" + (f", unit: {unit})" if unit else ")")
    return what + (f" (unit: {unit})" if unit else "")


def allowed(key: Key, forms: tuple[str, ...] | None = None) -> str:
    """What ``key`` allows, in words (the second half of an error message)."""
    forms = key.forms if forms is None else forms
    text = " or ".join(_type_text(key, t) for t in key.types)
    if "range" in forms:
        return f"{text}, a non-empty 1-D list of them or a range {{start, stop, num}}"
    if "list" in forms:
        return f"{text}, or a non-empty 1-D list of them"
    return text


def show(value) -> str:
    """A value as the user wrote it (TOML booleans lower case), shortened."""
    text = ("true" if value else "false") if isinstance(value, (bool, np.bool_)) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def type_name(value) -> str:
    """The TOML type of a value as a user would name it (a boolean is not a number)."""
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, np.integer)):
        return "an integer"
    if isinstance(value, (float, np.floating)):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _got(key: Key, value) -> str:
    """The value as shown in a message, with its type when that is not one the key takes."""
    def real(v):
        return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))

    fits = {"number": real, "integer": _is_integer, "boolean": lambda v: isinstance(v, (bool, np.bool_)),
            "string": lambda v: isinstance(v, str)}
    if any(fits.get(t, _is_sequence)(value) for t in key.types):
        return show(value)
    return f"{show(value)} ({type_name(value)})"


def check_value(key: Key, value, label: str | None = None, *, forms: tuple[str, ...] = (),
                error: type[ValueError] = UserError) -> None:
    """Raise ``error`` naming ``label`` (default: the key's name), the value and what is allowed, unless
    ``value`` has the key's type, range and choices (or one of ``forms``: a list of such values, a range)."""
    label = label or key.name
    if "range" in forms and isinstance(value, dict):
        return _check_range(key, value, label, error)
    if "list" in forms and isinstance(value, list):
        if not value:
            raise error(f"{label}: a list needs at least one value")
        bad = [v for v in value if not any(_matches(key, t, v) for t in key.types)]
        if bad:
            raise error(f"{label} must be {allowed(key, forms)}, got {_got(key, bad[0])} in {show(value)}")
        return None
    if not any(_matches(key, t, value) for t in key.types):
        raise error(f"{label} must be {allowed(key, forms)}, got {_got(key, value)}")
    return None


def check_items(key: Key, value: list, label: str, error: type[ValueError] = UserError) -> list[dict]:
    """Each table of a "list[table]" value, or the one "table" (``check_value`` first): known keys
    (``key.items``), each value's type, range and choices; messages name ``label[i].key`` (``label.key``)."""
    check_value(key, value, label, error=error)
    single = isinstance(value, dict)
    for i, item in enumerate([value] if single else value):
        where = label if single else f"{label}[{i}]"
        unknown = sorted(set(item) - set(key.items.keys))
        if unknown:
            raise error(f"{where}: unknown key(s) {unknown}; allowed: {list(key.items.keys)}")
        for k, v in item.items():
            check_value(key.items.keys[k], v, f"{where}.{k}", error=error)
        kind = item.get("kind")
        for k in item:
            only = key.items.keys[k].only_with
            if only and kind not in only:
                raise error(f"{where}.{k} has no meaning with kind = {kind!r}; it applies to kind = "
                            + " or ".join(repr(c) for c in only))
    return value


def _check_range(key: Key, value: dict, label: str, error) -> None:
    extra = sorted(set(value) - set(RANGE.keys))
    missing = [k for k in RANGE.keys if k not in value]
    if extra or missing:
        raise error(f"{label}: a range needs exactly the keys {list(RANGE.keys)}; unknown {extra}, missing "
                    f"{missing}")
    for end in ("start", "stop"):
        check_value(key, value[end], f"{label}.{end}", error=error)
    check_value(RANGE.keys["num"], value["num"], f"{label}.num", error=error)




def check_fields(obj, table: Table, prefix: str = "") -> None:
    """Check the dataclass fields of a settings object (SimulationSettings, Drive) that are keys of ``table``
    (their Python form: no lists of values, None where the default is None)."""
    for f in fields(obj):
        key = table.keys.get(f.name)
        value = getattr(obj, f.name)
        if key is None or value is None and key.default is None:
            continue
        check_value(key, value, prefix + f.name)
