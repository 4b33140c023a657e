"""MkDocs hooks: generated reference sections, and a check that the API page covers the public API.

A page holds a placeholder line; ``on_page_markdown`` replaces it by the Markdown that a function of the
package writes from the code itself (the scenario schema, the output catalogue). A placeholder whose
generator cannot be imported, or that no page contains, stops the build: the reference never silently
falls back to stale or missing text.
"""

from __future__ import annotations

import importlib
import re

from mkdocs.exceptions import PluginError

GENERATED = {
    "<!-- sde_com:scenario-reference -->": ("sde_com.schema", "scenario_reference_markdown"),
    "<!-- sde_com:output-reference -->": ("sde_com.catalogue", "output_reference_markdown"),
}
API_PAGE = "reference/api.md"
_used: set[str] = set()


def _generate(placeholder: str, page_path: str) -> str:
    module_name, function_name = GENERATED[placeholder]
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{page_path}: {placeholder} needs {module_name}.{function_name}(): {exc}") from exc
    text = function()
    if not isinstance(text, str) or not text.strip():
        raise PluginError(f"{page_path}: {module_name}.{function_name}() returned no Markdown")
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
    would shadow the function for mkdocstrings (``sde_com.sweep.sweep``): it must be the same object.
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
                              "then write the defining path, e.g. sde_com.sweep.sweep)")
        documented.add(name)
    if missing := sorted(public - documented):
        raise PluginError(f"{API_PAGE} does not document these names of sde_com.__all__: {', '.join(missing)}")


def on_pre_build(config) -> None:
    _used.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    for placeholder in GENERATED:
        if placeholder in markdown:
            markdown = markdown.replace(placeholder, _generate(placeholder, page.file.src_uri))
            _used.add(placeholder)
    if page.file.src_uri == API_PAGE:
        _check_api_page(markdown)
    return markdown


def on_post_build(config) -> None:
    if missing := sorted(set(GENERATED) - _used):
        raise PluginError(f"no page contains the placeholder(s) {', '.join(missing)}")
