"""Faults and limits: runs that must end in a result identical to the reference, or in a clean refusal."""

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import run_cli, write_scenario

from sde_com.errors import RunWarning
from sde_com.runs.engine import execute
from sde_com.runs.scenario import parse_scenario

# A small transient on several units (chunk 16 of 64 trajectories, two points), so both workers get some.
SIM = """
[model]
detuning = [0.7, 0.8]
[simulate]
method = "exact"
dt = 0.5
duration = 20.0
trajectories = 64
chunk = 16
seed = 1
save_every = 5.0
"""

_DASK_RUNS = textwrap.dedent("""
    import sys
    from pathlib import Path
    import xarray as xr
    from sde_com.results.io import read_dataset
    from sde_com.runs.engine import execute
    from sde_com.runs.scenario import parse_scenario

    folder, n = Path(sys.argv[1]), int(sys.argv[2])
    scenario = parse_scenario(sys.argv[3])

    def same(a, b):
        for ds in (a, b):
            ds.attrs.pop("history", None)
        xr.testing.assert_identical(a, b)

    execute(scenario, folder / "cold.nc", quiet=True, workers=2)  # from an empty kernel cache
    execute(scenario, folder / "ref.nc", quiet=True)  # in-process: compiles nothing more, caches all
    ref = read_dataset(folder / "ref.nc")
    same(read_dataset(folder / "cold.nc"), ref)
    for k in range(n):
        execute(scenario, folder / "w.nc", quiet=True, force=True, workers=2)
        same(read_dataset(folder / "w.nc"), ref)
    print("identical", n + 1)
""")


def test_two_workers_from_an_empty_cache_after_an_in_process_run_and_twenty_times(tmp_path):
    """The NUMBA_NUM_THREADS failure of ``--workers 2`` after an in-process run (issue: 3 of 3 runs failed
    with a cache in that state): a cold Dask run, the in-process reference, then 20 Dask runs in a row, all
    identical to it. Workers get their one Numba thread per call (``run_one``), not from their environment."""
    env = {**os.environ, "SDE_COM_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _DASK_RUNS, str(tmp_path), "20", SIM], capture_output=True,
                          text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "identical 21" in done.stdout


STEADY = "[model]\ndetuning = 0.8\n"


def _refused(tmp_path, capsys, out, *extra, text=STEADY) -> str:
    """Run the CLI, which must exit 2 leaving no checkpoint folder and no new output; → its message."""
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run_cli(tmp_path, text, out, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and "Traceback" not in err, err
    after = sorted(p.name for p in tmp_path.iterdir())
    assert [p for p in after if p not in before and p != "scenario.toml"] == [], after
    return err


def test_an_output_that_is_a_directory_is_refused_even_with_force(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert "is a directory" in _refused(tmp_path, capsys, tmp_path / "out", "--force")


def test_a_dangling_symbolic_link_counts_as_an_existing_output(tmp_path, capsys):
    (tmp_path / "out.nc").symlink_to(tmp_path / "nowhere")
    assert "exists; pass --force" in _refused(tmp_path, capsys, tmp_path / "out.nc")
    assert run_cli(tmp_path, STEADY, tmp_path / "out.nc", "--force") == 0
    assert (tmp_path / "out.nc").is_file() and not (tmp_path / "out.nc").is_symlink()


@pytest.mark.parametrize("case", ["parent is a file", "missing parent", "name too long"])
def test_an_output_path_that_cannot_be_made_is_refused_naming_it(tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    out = {"parent is a file": tmp_path / "afile" / "out.nc", "missing parent": tmp_path / "none" / "out.nc",
           "name too long": tmp_path / ("a" * 250 + ".nc")}[case]
    message = _refused(tmp_path, capsys, out, "--force")
    assert str(out.parent if case != "name too long" else out.name) in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_folder_is_refused(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o555)
    assert "not writable" in _refused(tmp_path, capsys, tmp_path / "ro" / "out.nc")


def test_the_scenario_file_is_never_the_output(tmp_path, capsys):
    from sde_com.cli import main

    scenario = write_scenario(tmp_path, STEADY)
    for extra in (["-o", str(scenario)], ["-o", str(tmp_path / "a.nc"), "--plot-file", str(scenario)]):
        assert main(["run", str(scenario), "--force", "--quiet", *extra]) == 2
        assert "is the scenario file itself" in capsys.readouterr().err
        assert scenario.read_text() == STEADY and sorted(p.name for p in tmp_path.iterdir()) == ["scenario.toml"]


def test_force_removes_a_symlinked_checkpoint_folder_without_following_it(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    (tmp_path / "out.nc.parts").symlink_to(target)
    assert "in the way" in _refused(tmp_path, capsys, tmp_path / "out.nc")
    assert run_cli(tmp_path, STEADY, tmp_path / "out.nc", "--force") == 0
    assert (target / "keep.txt").read_text() == "mine" and not os.path.lexists(tmp_path / "out.nc.parts")


def test_resume_without_a_checkpoint_starts_afresh_and_says_so(tmp_path, capsys):
    assert run_cli(tmp_path, STEADY, tmp_path / "out.nc", "--resume") == 0
    assert "sde-com: warning: --resume: no checkpoint" in capsys.readouterr().err
    assert (tmp_path / "out.nc").exists()
    with pytest.warns(RunWarning, match="starting afresh"):  # the API raises it as a warning
        execute(parse_scenario(STEADY), tmp_path / "api.nc", resume=True, quiet=True)


def test_a_simulation_with_no_stable_branch_anywhere_is_refused(tmp_path, capsys):
    unstable = "[model]\ndetuning = 0.5\npower = 1.0\n[simulate]\ndt = 0.5\nduration = 10.0\ntrajectories = 8\n"
    assert "no operating point of this run has a stable branch" in _refused(tmp_path, capsys, tmp_path / "a.nc",
                                                                             text=unstable)
    transient = unstable + "save_every = 1.0\ninitial = \"thermal\"\n"
    assert "allow_unstable = true runs a transient" in _refused(tmp_path, capsys, tmp_path / "a.nc", text=transient)
    assert run_cli(tmp_path, transient + "allow_unstable = true\n", tmp_path / "a.nc") == 0
