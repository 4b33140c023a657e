"""The package tree shows the layers, and imports run one way: a module imports only from its own layer
or the layers below it (docs/architecture.md draws them)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sde_com"

# bottom to top; a module's layer is the first entry its dotted name (below sde_com) starts with
LAYERS = (
    ("_version", "errors", "spec", "kernel_cache", "inputs"),
    ("random",),
    ("kernels",),
    ("physics",),
    ("results",),
    ("simulation",),
    ("runs",),
    ("plot", "benchmarks"),
    ("cli",),
    ("__init__", "resonator", "hamiltonian"),
)


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"sde_com.{module} belongs to no layer: add it to LAYERS and docs/architecture.md")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)
        out[name] = path
    return out


def _imports(path: Path, runtime_only: bool = False) -> set[str]:
    """sde_com modules imported anywhere in the file (module level or inside functions); ``runtime_only``:
    less those under ``if TYPE_CHECKING:``, which never run."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("sde_com"):
            base = node.module.removeprefix("sde_com").lstrip(".")
            found |= {base} if base else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path.name}: relative import; the package imports by absolute name")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("sde_com.") for a in node.names if a.name.startswith("sde_com.")}
    return found


MODULES = _modules()


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__init__"])
def test_imports_run_one_way(module):
    rank = _layer(module)
    upward = sorted(t for t in _imports(MODULES[module]) if _layer(t) > rank)
    assert not upward, f"sde_com.{module} (layer {LAYERS[rank]}) imports from higher layers: {upward}"


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def _resolve_module(name: str) -> str | None:
    """The module of MODULES that an imported dotted name lives in (``physics.linear.psd_sqrt`` → the module
    ``physics.linear``), or None for a name outside the package's modules."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_cycles():
    """No module reaches itself through imports, counting those inside functions: registries find their
    members by name (physics.system.BUILTIN_SYSTEMS) instead of importing them."""
    graph = {m: {t for t in map(_resolve_module, _imports(path, runtime_only=True)) if t and t != m}
             for m, path in MODULES.items()}
    graph.pop("__init__")  # the public face imports everything on first use, and nothing imports it
    for edges in graph.values():
        edges.discard("__init__")
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " → ".join(f"sde_com.{m}" for m in cycle))
            if nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
