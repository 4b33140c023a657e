"""The README's own commands: the Quick start is two commands (CI runs them from the README itself), and
every example runs as written, twice in a row (outputs are overwritten, never refused)."""

import importlib.util
import os
import re
import shlex

import pytest
from conftest import ROOT

from sde_com.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _quickstart_commands() -> list[str]:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / ".ci" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.quickstart_commands(README)


def test_quickstart_is_two_commands_install_then_tests():
    first, second = _quickstart_commands()
    assert first.startswith("pip install '.[plot]' && sde-com run ")
    assert second == "pip install -e '.[test]' && pytest"


@pytest.fixture
def in_scratch_clone(tmp_path, monkeypatch):
    """Run from a scratch folder that sees the shipped scenarios, as from a clone (outputs land there)."""
    os.symlink(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cli_examples() -> list[list[str]]:
    """`sde-com run ...` lines of the README outside the Quick start (which CI runs itself)."""
    quick = set(_quickstart_commands())
    lines = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("sde-com run") and line not in quick]


def test_cli_examples_rerun(in_scratch_clone):
    examples = _cli_examples()
    assert examples
    for argv in examples:
        for _ in range(2):
            assert main(argv + ["--quiet"]) == 0, argv
    assert (in_scratch_clone / "transient.nc").exists()


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_rerun(index, in_scratch_clone, capsys):
    code = _blocks("python")[index]
    for _ in range(2):
        exec(compile(code, f"README.md python block {index}", "exec"), {})  # noqa: S102
    assert capsys.readouterr().out
