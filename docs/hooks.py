"""MkDocs hooks: generated reference sections, and a check that the API page covers the public API.

A page holds a generated section between ``<!-- sde_com:NAME -->`` and ``<!-- /sde_com:NAME -->``: the Markdown
written from the code itself: the scenario schema and the output catalogue (by functions of the package), the
keys that the time rule covers (from ``sde_com.runs.schema.SCHEMA``) and the command line (from
``sde_com.cli.build_parser()``), by the generators below. The sections are committed, so the pages read the
same in the repository as on the site; ``python docs/hooks.py`` rewrites them from the code, and both the build
(``on_page_markdown``) and a test (tests/test_docs.py) stop when one is stale. A section whose generator cannot
be imported, or that no page contains, stops the build: the reference never silently falls back to stale or
missing text.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Callable
from contextlib import contextmanager

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # the tests read the generated sections without the docs extra

    class PluginError(Exception):
        """A build error of the reference pages (mkdocs' PluginError where mkdocs is installed)."""

API_PAGE = "reference/api.md"
TIME_TABLES = ("simulate", "drive", "detect")  # the tables that docs/physics.md's time rule names
HELP_COLUMNS = "100"  # terminal width for argparse, so the generated help does not depend on the terminal
_used: set[str] = set()


def _time_keys_markdown() -> str:
    """The keys of the time rule: every scenario key whose unit is ``schema.TIME`` or ``schema.RATE``.

    The rule on the physics page names the tables in words; a TIME or RATE key in another table stops the
    build, so that the words cannot go stale either. The links are relative to a page at the top of docs/.
    """
    from sde_com.runs import schema

    lines = []
    for name, table in schema.SCHEMA.items():
        times = [f"`{k}`" for k, key in table.keys.items() if key.unit == schema.TIME]
        rates = [f"`{k}`" for k, key in table.keys.items() if key.unit == schema.RATE]
        if (times or rates) and name not in TIME_TABLES:
            raise PluginError(f"[{name}] has keys in units of 1/ω_ref or ω_ref: name it in docs/physics.md's "
                              "time rule and in TIME_TABLES of docs/hooks.py")
        parts = ([f"times (1/ω_ref): {', '.join(times)}"] if times else []) + (
            [f"frequencies (ω_ref): {', '.join(rates)}"] if rates else [])
        if parts:
            lines.append(f"- [`[{name}]`](reference/scenario.md#{name}): {'; '.join(parts)}")
    if not lines:
        raise PluginError("sde_com.runs.schema.SCHEMA has no key in units of 1/ω_ref or ω_ref")
    return "\n".join(lines)


@contextmanager
def _plain_terminal():
    """A fixed width and no colour for argparse's help, whatever terminal the build runs in."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "PYTHON_COLORS")}
    os.environ.update(COLUMNS=HELP_COLUMNS, NO_COLOR="1", PYTHON_COLORS="0")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _defaults(parser: argparse.ArgumentParser) -> str:
    """The options of ``parser`` that have a default value (argparse's help does not show them)."""
    out = []
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            out.append(f"`{action.option_strings[-1]} {action.default}`")
    return f"Defaults: {', '.join(out)}." if out else ""


def _cli_reference_markdown() -> str:
    """``sde-com --help`` and every ``sde-com COMMAND --help``, from ``sde_com.cli.build_parser()``."""
    from sde_com.cli import build_parser

    with _plain_terminal():
        parser = build_parser()
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        lines = ["### `sde-com`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in subparsers.choices.items():
            lines += [f"### `sde-com {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
            if defaults := _defaults(sub):
                lines += [defaults, ""]
    return "\n".join(lines)


def _single_cavity_markdown() -> str:
    """The parameters of the built-in single-cavity system, from its ``parameters`` (unit, default, range)."""
    from sde_com.physics.cavity import SingleCavity
    from sde_com.runs.schema import markdown_table
    from sde_com.spec import make_table

    return "\n".join(markdown_table(make_table("single_cavity", "", *SingleCavity.parameters.values())))


GENERATED: dict[str, tuple[str, str] | Callable[[], str]] = {
    "<!-- sde_com:scenario-reference -->": ("sde_com.runs.schema", "scenario_reference_markdown"),
    "<!-- sde_com:output-reference -->": ("sde_com.runs.kinds", "output_reference_markdown"),
    "<!-- sde_com:time-keys -->": _time_keys_markdown,
    "<!-- sde_com:cli-reference -->": _cli_reference_markdown,
    "<!-- sde_com:single-cavity-parameters -->": _single_cavity_markdown,
}


def _section(placeholder: str) -> re.Pattern:
    """The committed section of a placeholder: its opening marker, the generated text, its closing marker."""
    name = placeholder.removeprefix("<!-- ").removesuffix(" -->")
    return re.compile(re.escape(placeholder) + r"\n(.*?)<!-- /" + re.escape(name) + " -->", re.DOTALL)


def regenerate(markdown: str, page_path: str) -> str:
    """``markdown`` with every generated section written anew from the code."""
    for placeholder in GENERATED:
        pattern = _section(placeholder)
        if pattern.search(markdown):
            text = _generate(placeholder, page_path).rstrip("\n")
            name = placeholder.removeprefix("<!-- ").removesuffix(" -->")
            section = f"{placeholder}\n{text}\n<!-- /{name} -->"
            markdown = pattern.sub(lambda _, section=section: section, markdown)
    return markdown


def _generate(placeholder: str, page_path: str) -> str:
    generator = GENERATED[placeholder]
    if callable(generator):
        where = f"docs/hooks.py:{generator.__name__}()"
        try:
            text = generator()
        except ImportError as exc:
            raise PluginError(f"{page_path}: {placeholder} needs {where}: {exc}") from exc
    else:
        module_name, function_name = generator
        where = f"{module_name}.{function_name}()"
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"{page_path}: {placeholder} needs {where}: {exc}") from exc
        text = function()
    if not isinstance(text, str) or not text.strip():
        raise PluginError(f"{page_path}: {where} returned no Markdown")
    return text


def _resolve(path: str):
    """The object at a dotted path, as Python sees it (the longest importable module, then attributes)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _check_api_page(markdown: str) -> None:
    """Every name of ``sde_com.__all__`` has a ``:::`` directive, and each directive shows a public name.

    A directive names ``sde_com.NAME``, or the defining module's path where a submodule of the same name
    would shadow the function for mkdocstrings (``sde_com.results.sweep.sweep``): it must be the same object.
    """
    import sde_com

    public = set(sde_com.__all__) - {"__version__"}
    documented = set()
    for path in re.findall(r"^::: (sde_com(?:\.\w+)+)\s*$", markdown, flags=re.MULTILINE):
        name = path.rsplit(".", 1)[1]
        if name not in public:
            raise PluginError(f"{API_PAGE}: {path} is not a name of sde_com.__all__")
        if _resolve(path) is not getattr(sde_com, name):
            raise PluginError(f"{API_PAGE}: {path} is not the object sde_com.{name} (a submodule of that name? "
                              "then write the defining path, e.g. sde_com.results.sweep.sweep)")
        documented.add(name)
    if missing := sorted(public - documented):
        raise PluginError(f"{API_PAGE} does not document these names of sde_com.__all__: {', '.join(missing)}")


def on_pre_build(config) -> None:
    _used.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    for placeholder in GENERATED:
        if placeholder in markdown:
            if not _section(placeholder).search(markdown):
                raise PluginError(f"{page.file.src_uri}: {placeholder} has no closing marker")
            _used.add(placeholder)
    if regenerate(markdown, page.file.src_uri) != markdown:
        raise PluginError(f"{page.file.src_uri}: a generated section is stale; run `python docs/hooks.py`")
    if page.file.src_uri == API_PAGE:
        _check_api_page(markdown)
    return markdown


def on_post_build(config) -> None:
    if missing := sorted(set(GENERATED) - _used):
        raise PluginError(f"no page contains the placeholder(s) {', '.join(missing)}")


def main() -> None:
    """Rewrite the generated sections of every page under docs/ from the code (``python docs/hooks.py``)."""
    from pathlib import Path

    docs = Path(__file__).parent
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        new = regenerate(text, str(page.relative_to(docs)))
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote {page.relative_to(docs.parent)}")


if __name__ == "__main__":
    main()
