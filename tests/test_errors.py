"""Errors in layers (sde_com.errors): a user's mistake exits 2 with a message, a numerical failure on valid
input exits 3 naming what failed and where, a bug exits 1 with a traceback (never "your input")."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_cli

import sde_com
from sde_com.cli import EXIT_BAD_INPUT, EXIT_NUMERICAL, main
from sde_com.errors import NumericalError, ScenarioError, UserError
from sde_com.physics.resonator.device import Device
from sde_com.physics.system import get_system
from sde_com.runs.kinds import RUN_KINDS
from sde_com.runs.scenario import parse_scenario

DRIVEN = ('[model]\ndetuning = 0.75\n[simulate]\nmethod = "exact"\ndt = 0.5\nduration = 20.0\ntrajectories = 4\n'
          'initial = "thermal"\nsave_every = 5.0\n[drive]\nkind = "ramp"\nrise_time = 5.0\n')
SIMULATED = ('[model]\ndetuning = [0.7, 0.8]\n[simulate]\nmethod = "exact"\ndt = 0.5\nduration = 20.0\n'
             'trajectories = 4\n')


def test_user_errors_are_value_errors_and_numerical_errors_runtime_errors():
    assert issubclass(ScenarioError, UserError) and issubclass(UserError, ValueError)
    assert issubclass(NumericalError, RuntimeError) and not issubclass(NumericalError, ValueError)
    with pytest.raises(UserError, match="mass"):
        Device(mass=-1.0)


@pytest.mark.parametrize("text, fragment", [
    ("[model]\nmass = -1.0\n", "mass"),
    ("[simulate]\ndt = 0.0\n", "simulate.dt"),
    ("[nonsense]\n", "nonsense"),
])
def test_a_user_error_exits_2_with_a_message_and_no_traceback(tmp_path, capsys, text, fragment):
    assert run_cli(tmp_path, text, tmp_path / "out.nc") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error:") and fragment in err and "Traceback" not in err
    assert not (tmp_path / "out.nc").exists()


def test_a_file_error_on_the_output_exits_2(tmp_path, capsys):
    assert run_cli(tmp_path, "", tmp_path / "missing" / "out.nc") == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err


def test_a_mean_field_ode_that_fails_exits_3_naming_the_parameters(tmp_path, capsys, monkeypatch):
    import scipy.integrate

    class Failed:
        success = False
        message = "Required step size is less than spacing between numbers."

    monkeypatch.setattr(scipy.integrate, "solve_ivp", lambda *args, **kwargs: Failed())
    assert run_cli(tmp_path, DRIVEN, tmp_path / "out.nc") == EXIT_NUMERICAL
    err = capsys.readouterr().err
    assert err.startswith("sde-com: numerical failure:") and "Traceback" not in err
    assert "mean-field integration failed" in err and "Required step size" in err and '"detuning": 0.75' in err


def test_a_failed_factorization_of_a_point_exits_3_naming_the_point(tmp_path, capsys, monkeypatch):
    import sde_com.runs.kinds as kinds

    real = kinds.point_model

    def singular(settings, params, point, branch, system=None):
        if point == 1:
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        return real(settings, params, point, branch, system)

    monkeypatch.setattr(kinds, "point_model", singular)
    assert run_cli(tmp_path, SIMULATED, tmp_path / "out.nc") == EXIT_NUMERICAL
    err = capsys.readouterr().err
    assert "not positive definite" in err and "'detuning': 0.8" in err and "branch 0" in err and "dt = 0.5" in err


@pytest.mark.parametrize("error", [np.linalg.LinAlgError("a bug"), ValueError("a bug"), RuntimeError("a bug")],
                         ids=["LinAlgError", "ValueError", "RuntimeError"])
def test_a_bug_is_not_reported_as_bad_input(tmp_path, monkeypatch, error):
    def broken(scenario):
        raise error

    monkeypatch.setattr(RUN_KINDS["sweep"], "plan", broken)
    with pytest.raises(type(error), match="a bug"):
        main(["run", str(ROOT / "scenarios" / "fig2bc.toml"), "-o", str(tmp_path / "out.nc"), "--quiet"])


def test_a_bug_exits_1_with_a_traceback(tmp_path):
    script = ("import sys\nimport numpy as np\nfrom sde_com.cli import main\nfrom sde_com.runs.kinds import RUN_KINDS\n"
              "def broken(scenario):\n    raise np.linalg.LinAlgError('a bug')\n"
              "RUN_KINDS['sweep'].plan = broken\n"
              f"sys.exit(main(['run', {str(ROOT / 'scenarios' / 'fig2bc.toml')!r}, '-o', "
              f"{str(tmp_path / 'out.nc')!r}, '--quiet']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "LinAlgError: a bug" in result.stderr


def test_a_run_kind_the_system_cannot_do_is_a_user_error():
    from sde_com.runs.kinds import require_capability

    class Bare:
        name = "bare"
        capabilities = frozenset()

    for kind in RUN_KINDS.values():
        if kind.capability is None:
            require_capability(kind, Bare())
        else:
            able = get_system("spinning_resonator") if kind.capability != "periodic" else sde_com.MatrixSystem(
                ["m"], [[0.0, 1.0], [-1.0, -0.1]], [[0.1, 0.0], [0.0, 0.1]], modulation={"frequency": 1.5})
            require_capability(kind, able)  # the resonator can do every kind but a modulated system's
            with pytest.raises(UserError, match=f"{kind.name}.*{kind.capability}"):
                require_capability(kind, Bare())


def test_a_missing_wigner_branch_is_a_user_error_that_leaves_nothing_behind(tmp_path, capsys):
    text = ('[model]\ndetuning = 0.75\n[simulate]\nmethod = "em"\ndt = 0.005\nduration = 10.0\n'
            'trajectories = 4\n[wigner]\nbranch = 7\n')
    out = tmp_path / "w.nc"
    assert run_cli(tmp_path, text, out) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "wigner.branch = 7 does not exist" in err and "1 mean-field branch" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "w.nc.parts").exists()  # the corrected run is not blocked


def test_a_driven_run_from_the_steady_state_is_refused_before_any_work():
    text = ('[model]\ndetuning = 0.75\n[simulate]\nmethod = "exact"\ndt = 0.25\nduration = 40.0\n'
            'trajectories = 64\nsave_every = 2.0\ninitial = "steady"\n[drive]\nkind = "ramp"\nrise_time = 20.0\n')
    with pytest.raises(ScenarioError, match="initial = 'steady' has no meaning under a changing drive"):
        parse_scenario(text)
