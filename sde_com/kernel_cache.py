"""Where the compiled Numba kernels are cached, and whether a job will compile them first.

The cache lives outside the installed package, so that reinstalling sde_com (for example a plain install
followed by an editable one) can never leave a stray ``sde_com/__pycache__`` folder that shadows the
package. The folder is, in order of precedence:

1. ``$SDE_COM_CACHE_DIR``;
2. ``$NUMBA_CACHE_DIR``, if the user set it for all of Numba;
3. ``$XDG_CACHE_HOME/sde_com/numba`` (by default ``~/.cache/sde_com/numba``).

Dask workers import sde_com as well, so they resolve the same folder (LocalCluster workers also inherit
the environment variable set here). ``sde-com cache`` prints the folder; ``sde-com cache --clear`` empties it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# measured on the 2-core development machine: the main job (fig2a) takes 12.5 s cold against 2.0 s warm
FIRST_RUN_COMPILE_SECONDS = 10


def cache_dir() -> Path:
    """The kernel cache folder (not created)."""
    for var in ("SDE_COM_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sde_com" / "numba"


def configure() -> Path:
    """Point Numba's cache at ``cache_dir()``; runs when sde_com is imported, before any kernel is defined.

    Numba reads ``config.CACHE_DIR`` when a ``cache=True`` function is defined, so setting it here covers
    every sde_com kernel even if Numba was imported first. The environment variable is set too, so that
    worker processes started from here use the same folder. An unwritable folder falls back to a
    per-user temporary one rather than failing the import.
    """
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe")
        probe.close()
    except OSError:
        path = Path(tempfile.gettempdir()) / f"sde_com-numba-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        path.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    from numba.core import config

    config.CACHE_DIR = str(path)
    return path


def is_cached(module: str) -> bool:
    """Whether the cache holds compiled functions of the sde_com module ``module`` (e.g. ``"chain"``) for
    this installation (Numba keys its cache folder by the source folder, as computed here)."""
    from numba.core.caching import _CacheLocator

    source = Path(__file__).with_name(f"{module}.py")
    folder = cache_dir() / _CacheLocator.get_suitable_cache_subpath(str(source))
    return any(folder.glob(f"{module}.*.nbi"))


def announce_compile(modules: tuple[str, ...], stream=None) -> bool:
    """Say on ``stream`` (stderr) that the kernels of ``modules`` are about to be compiled, when the cache
    holds none of them yet; return whether it said so."""
    missing = [m for m in modules if not is_cached(m)]
    if not missing:
        return False
    print(f"sde-com: compiling the numba kernels ({', '.join(missing)}); this happens on the first run only "
          f"and takes about {FIRST_RUN_COMPILE_SECONDS} s on a quiet 2-core machine (longer under load). "
          f"Cache: {cache_dir()}", file=stream or sys.stderr, flush=True)
    return True


def clear() -> Path:
    """Remove every cached kernel; return the folder."""
    path = cache_dir()
    if path.exists():
        shutil.rmtree(path)
    return path
