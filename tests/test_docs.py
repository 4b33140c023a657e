"""The generated reference sections of the docs (scenario keys, output variables, the time rule's keys, the
command line, the single cavity's parameters) are committed, so they read the same in the repository as on
the site: each must equal what its generator writes from the code now (``python docs/hooks.py`` rewrites
them)."""

import importlib.util

import pytest
from conftest import ROOT

DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()
PAGES = sorted(p for p in DOCS.rglob("*.md") if "<!-- sde_com:" in p.read_text(encoding="utf-8"))


def test_every_generated_section_is_on_a_page():
    text = "".join(p.read_text(encoding="utf-8") for p in PAGES)
    for placeholder in HOOKS.GENERATED:
        assert HOOKS._section(placeholder).search(text), placeholder


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_generated_sections_are_current(page):
    text = page.read_text(encoding="utf-8")
    assert HOOKS.regenerate(text, str(page.relative_to(DOCS))) == text, (
        f"{page.relative_to(ROOT)} is stale: run `python docs/hooks.py`")
