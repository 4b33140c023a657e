"""Where the compiled Numba kernels are cached, and whether a job will compile them first.

The cache lives outside the installed package, so that reinstalling sde_com (for example a plain install
followed by an editable one) can never leave a stray ``sde_com/__pycache__`` folder that shadows the
package. The folder is, in order of precedence:

1. ``$SDE_COM_CACHE_DIR``;
2. ``$NUMBA_CACHE_DIR``, if the user set it for all of Numba;
3. ``$XDG_CACHE_HOME/sde_com/numba`` (by default ``~/.cache/sde_com/numba``).

Dask workers import sde_com as well, so they resolve the same folder. ``sde-com cache`` prints the folder;
``sde-com cache --clear`` removes sde_com's compiled kernels from it (and nothing else).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# First-run compile time, measured as cold minus warm wall time (medians, BLAS pinned to one thread;
# sde_com.benchmarks.startup.benchmark_compile) on the 2-core development machine: the main job (fig2a: 5.4 s
# cold, 1.6 s warm with `sde-com run`, which compiles the chain's callees aside on the second core; 8.7 s cold
# without, as in Python) compiles the steady-state kernels; a time-domain job (sim_*: 12.9–14.8 s cold, ~1.5 s
# warm) the ensemble kernels as well.
COMPILE_SECONDS = {"steady": 5, "time-domain": 12}

_active: Path | None = None  # the folder sde_com's kernels were defined with


def cache_dir() -> Path:
    """The kernel cache folder: the one sde_com's kernels use (``configured_dir`` unless that was
    unwritable); created."""
    return _resolve()


def configured_dir() -> Path:
    """The folder the environment asks for (see the module docstring); not created."""
    for var in ("SDE_COM_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sde_com" / "numba"


def _resolve() -> Path:
    """``configured_dir``, created; an unwritable folder falls back to a per-user temporary one rather than
    failing the first kernel definition. Resolved once per process (``cache_dir`` reports it)."""
    global _active
    if _active is not None:
        return _active
    path = configured_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=path, prefix=".probe").close()
    except OSError:
        path = Path(tempfile.gettempdir()) / f"sde_com-numba-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        path.mkdir(parents=True, exist_ok=True)
    _active = path
    return path


def install() -> None:
    """Make Numba cache every ``cache=True`` function defined in sde_com's source files in ``cache_dir()``
    (``sde_com/__init__.py`` calls it, so it runs before any kernel module is imported).

    Numba fixes a function's cache folder when the function is defined, asking its cache locators in turn;
    ours goes first and answers only for sde_com's files, so sde_com's modules can be imported lazily, in
    any order, while other code in the process keeps its own ``NUMBA_CACHE_DIR`` setting (Numba's
    ``config.CACHE_DIR`` is never changed). Dask workers import sde_com and so resolve the same folder.
    Idempotent.
    """
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.61
    base = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
    if any(getattr(cls, "_sde_com", False) for cls in impl._locator_classes):
        return
    package = os.path.realpath(Path(__file__).parent) + os.sep

    class _SdeComLocator(base):
        """A ``NUMBA_CACHE_DIR``-style locator rooted at ``cache_dir()``, for sde_com's files only."""

        _sde_com = True

        def __init__(self, py_func, py_file):  # as the base class, with our folder for config.CACHE_DIR
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(str(_resolve()), self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.realpath(py_file).startswith(package):
                return None  # not ours: Numba's own locators decide
            return super(base, cls).from_function(py_func, py_file)  # skip the config.CACHE_DIR check

    impl._locator_classes = [_SdeComLocator, *impl._locator_classes]


def _subfolders() -> list[Path]:
    """sde_com's folders in the cache: Numba keys them by the source folder's name and a hash of its path,
    one per package folder of this installation (``kernels_<hash>``, ``physics_<hash>``, ...), plus
    ``sde_com_<hash>`` left by installations of the flat layout before 0.2."""
    from numba.core.caching import _CacheLocator

    root = cache_dir()
    ours = {root / _CacheLocator.get_suitable_cache_subpath(str(folder / "__init__.py"))
            for folder in (Path(__file__).parent, *Path(__file__).parent.rglob("*/"))
            if (folder / "__init__.py").exists()}
    return sorted(p for p in ours | set(root.glob("sde_com_*")) if p.is_dir())


def is_cached(module: str) -> bool:
    """Whether the cache holds compiled functions of the sde_com module ``module`` (dotted below the
    package, e.g. ``"physics.resonator.chain"``) for
    this installation (Numba keys its cache folder by the source folder, as computed here)."""
    from numba.core.caching import _CacheLocator

    source = Path(__file__).parent.joinpath(*module.split(".")).with_suffix(".py")
    folder = cache_dir() / _CacheLocator.get_suitable_cache_subpath(str(source))
    return any(folder.glob(f"{module.rpartition('.')[2]}.*.nbi"))


QUIET_VARIABLE = "SDE_COM_QUIET"  # set (by `sde-com run --quiet`): no notice, here or in the workers it starts
ENSEMBLE_MODULES = ("random.philox", "random.normals", "kernels.ensemble", "kernels.accumulators")
PERIODIC_MODULES = ("kernels.floquet", "physics.gaussian")  # a periodic state's: its maps, E_N over the phase
VARYING_MODULES = ENSEMBLE_MODULES[:3]  # an ensemble under A(t) (a drive, a modulation): draws and steps


def periodic_modules(system, drive: bool = False) -> tuple[str, ...]:
    """The kernel modules a periodic state of ``system`` compiles: the maps, E_N where it has a pair of modes,
    and under a ``drive`` the system's own (its mean field and drift along the limit cycle)."""
    own = system.kernel_modules if drive else ()
    return (*own, *(m for m in PERIODIC_MODULES if m != "physics.gaussian" or len(system.modes) > 1))
_announced: set[str] = set()  # modules this process has said it compiles (said once)


def announce_compile(modules: tuple[str, ...], stream=None) -> bool:
    """Say on ``stream`` (stderr) that the kernels of ``modules`` are about to be compiled, when the cache
    holds none of them yet, and how long that takes; return whether it said so. The CLI says it before a run,
    the Python API (``sweep``, ``simulate``, ...) on its first call; once per module and process."""
    missing = [m for m in modules if m not in _announced and not is_cached(m)]
    _announced.update(modules)
    if not missing or os.environ.get(QUIET_VARIABLE):
        return False
    seconds = COMPILE_SECONDS["time-domain" if any(m.startswith("kernels.") for m in missing) else "steady"]
    print(f"sde-com: compiling the numba kernels ({', '.join(missing)}); this happens on the first run only "
          f"and takes about {seconds} s on a quiet 2-core machine (longer under load). Cache: {cache_dir()}",
          file=stream or sys.stderr, flush=True)
    return True


def compile_aside(target: str | None):
    """Start ``target`` ("module:function", a function that compiles kernels into the cache by calling them) in a
    second process, so that the compile of a first run is shared by two cores; the process, or None (nothing
    to do). It writes the same cache the first run reads (``SDE_COM_CACHE_DIR``, inherited), and prints nothing.
    """
    if target is None:
        return None
    import subprocess

    module, _, function = target.partition(":")
    code = f"import importlib; importlib.import_module({module!r}).{function}()"
    env = {**os.environ, "SDE_COM_CACHE_DIR": str(cache_dir())}
    try:  # -P: not the working folder first on the path (a stray sde_com/ there)
        return subprocess.Popen([sys.executable, "-P", "-c", code], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # a speed-up only: the run compiles everything itself
        return None


def clear() -> list[Path]:
    """Remove sde_com's compiled kernels (its own subfolders of the cache, nothing else that may share the
    folder); return what was removed."""
    removed = _subfolders()
    for folder in removed:
        shutil.rmtree(folder)
    return removed
