"""netCDF output: atomic writes (temporary name, then rename) with compression, and reading back."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Refuse an existing output unless ``force``; raise FileExistsError / FileNotFoundError naming it."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"output {str(path)!r} exists; pass --force (force=True) to overwrite it")
    if not path.parent.exists():
        raise FileNotFoundError(f"output folder {str(path.parent)!r} does not exist")
    return path


def replace_atomically(tmp: str | Path, path: Path) -> None:
    """Give the finished temporary file the usual permissions (mkstemp makes it 0600) and rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _encoding(ds: xr.Dataset) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        if var.dtype.kind in "fiu":
            enc[name] = {"zlib": True, "complevel": 4}
    return enc


def write_dataset(ds: xr.Dataset, path: str | Path, force: bool = False) -> Path:
    """Write ``ds`` as netCDF4 to ``path`` atomically: a temporary file beside it, renamed when complete.

    An interrupted write leaves no partial file under ``path``; an existing file is kept unless ``force``.
    """
    path = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds))
        replace_atomically(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_dataset(path: str | Path) -> xr.Dataset:
    """Open a netCDF file written by sde_com, fully loaded into memory (the file is closed on return)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
