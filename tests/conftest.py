"""Shared test helpers and fixtures.

``assert_identical_output``: the identity promise of written outputs (regeneration, resume, workers,
chunking) covers data, coordinates and every attribute except ``history``, which records when and by which
command a file was made. ``scenario_outputs``: every shipped scenario run once per session, in memory and
written to netCDF.
"""

from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = {p.stem: p for p in sorted((ROOT / "scenarios").glob("*.toml"))}
RUN_DEPENDENT_ATTRS = ("history",)


def without_history(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the attributes that differ from run to run (``history``)."""
    ds = ds.copy(deep=False)
    for name in RUN_DEPENDENT_ATTRS:
        ds.attrs.pop(name, None)
    return ds


def assert_identical_output(a: xr.Dataset, b: xr.Dataset) -> None:
    """``xr.testing.assert_identical`` on everything but ``history``."""
    xr.testing.assert_identical(without_history(a), without_history(b))


@pytest.fixture(scope="session")
def scenario_outputs(tmp_path_factory):
    """name -> (Dataset from run_scenario, path of the same written with write_dataset), for every
    scenarios/*.toml; each scenario runs once per session, on first use."""
    from sde_com.results.io import write_dataset
    from sde_com.runs.scenario import load_scenario, run_scenario

    folder = tmp_path_factory.mktemp("scenario_outputs")
    cache = {}

    class Outputs:
        names = tuple(SCENARIO_FILES)

        def __getitem__(self, name):
            if name not in cache:
                ds = run_scenario(load_scenario(SCENARIO_FILES[name]))
                cache[name] = ds, write_dataset(ds, folder / f"{name}.nc")
            return cache[name]

    return Outputs()
