"""Property-based fuzzing of the scenario schema: any mutation of a shipped scenario ends in a result, or in
a clean refusal (exit 2 with one message line), never a traceback, a hang or a stray file.

Each example mutates one shipped scenario (a key's value replaced by a value of any TOML type, including
huge, tiny, infinite and NaN numbers; a key removed; an unknown key or table added), then runs
``sde-com run --dry-run``, which makes every check a run makes before its first unit. Mutants whose plan is
small enough are then run for real, and must end in exit 0 (or 3, a numerical failure on valid input,
reported with a message).
"""

import json
import math
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sde_com.cli import main

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.toml"))
RUN_BELOW_SECONDS = 0.5  # mutants planned at most this long (and small in memory) also run for real


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(doc: dict) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 10**9, 10**12, 2**31, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e-12, 1e-6, 0.5, 1e6, 1e12, 1e300, float("inf"), float("nan")]),
)
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=12), st.sampled_from(["em", "exact", "cw", "ccw",
                                                                                    "thermal", "steady", ""]))
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.fixed_dictionaries({"start": numbers, "stop": numbers, "num": numbers}),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
)


SHARDS = 4  # the scenarios split into shards that run in parallel (pytest-xdist), 100 examples in all


@st.composite
def mutants(draw, shard):
    path = draw(st.sampled_from(SCENARIOS[shard::SHARDS]))
    doc = tomllib.loads(path.read_text())
    tables = [k for k, v in doc.items() if isinstance(v, dict)]
    action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add key", "add table"]))
    if action == "add table":
        doc[draw(st.sampled_from(["simulate", "drive", "wigner", "detect", "output", "plot", "bogus"]))] = \
            draw(st.dictionaries(st.sampled_from(["dt", "duration", "trajectories", "save_every", "variables",
                                                   "kind", "x"]), values, max_size=2))
        return path.name, doc
    name = draw(st.sampled_from(tables))
    table = doc[name]
    if action == "add key" or not table:
        table[draw(st.text(min_size=1, max_size=8))] = draw(values)
    else:
        key = draw(st.sampled_from(sorted(table)))
        if action == "remove":
            del table[key]
        else:
            table[key] = draw(values)
    return path.name, doc


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _clean(folder: Path) -> None:
    for p in folder.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


# 100 examples in all (25 a shard): about 130 s; the dry runs are milliseconds, the mutants that run are below
# RUN_BELOW_SECONDS
@pytest.mark.parametrize("shard", range(SHARDS))
def test_any_mutation_of_a_shipped_scenario_ends_cleanly(shard, folder, capsys):
    @settings(max_examples=100 // SHARDS, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(mutant=mutants(shard))
    def check(mutant):
        _check_mutant(mutant, folder / f"shard{shard}", capsys)

    (folder / f"shard{shard}").mkdir(exist_ok=True)
    check()


def _check_mutant(mutant, folder, capsys):
    source, doc = mutant
    _clean(folder)
    scenario = folder / "mutant.toml"
    scenario.write_text(_toml(doc))
    out = folder / "out.nc"
    status = main(["run", str(scenario), "-o", str(out), "--dry-run"])  # a traceback fails the test
    err = capsys.readouterr().err
    assert status in (0, 2), (source, err)
    assert sorted(p.name for p in folder.iterdir()) == ["mutant.toml"], (source, err)
    if status == 2:
        assert err.startswith("sde-com: error: ") and "Traceback" not in err, (source, err)
        return
    plan = re.search(r"about ([\d.e+]+) s|under 1 s", err)
    memory = re.search(r"peak memory ([\d.]+) (MB|GB|TB)", err)
    if plan is None or (plan.group(1) and float(plan.group(1)) > RUN_BELOW_SECONDS) or memory.group(2) != "MB":
        return  # planned as long: starting it is allowed, running it here is not
    status = main(["run", str(scenario), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status in (0, 2, 3), (source, err)
    if status:
        assert err.startswith("sde-com: ") and "Traceback" not in err, (source, err)
        assert sorted(p.name for p in folder.iterdir()) == ["mutant.toml"], (source, err)
