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


class StreamedNetCDF:
    """A netCDF file written in pieces: large variables slab by slab as they are produced, then the rest
    of the Dataset, then an atomic rename. Memory stays bounded by one slab, not the whole variable.

    Usage: ``w = StreamedNetCDF(path, force, dims, {name: (dims, attrs)})``; ``w.write(name, index, data)``
    any number of times; ``w.finish(ds)`` (ds: everything else, with coordinates) or ``w.abort()``.
    """

    def __init__(self, path: str | Path, force: bool, dims: dict[str, int],
                 variables: dict[str, tuple[tuple[str, ...], dict]]):
        import netCDF4
        import numpy as np

        self.path = check_writable(path, force)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        for name, size in dims.items():
            self.nc.createDimension(name, size)
        self.vars = {}
        for name, (vdims, attrs) in variables.items():
            chunks = [1] * (len(vdims) - 2) + [min(dims[vdims[-2]], 8192), dims[vdims[-1]]]
            var = self.nc.createVariable(name, "f8", vdims, zlib=True, complevel=4, fill_value=np.nan,
                                         chunksizes=chunks)
            var.setncatts(attrs)
            self.vars[name] = var

    def write(self, name: str, index, data) -> None:
        self.vars[name][index] = data

    def finish(self, ds: xr.Dataset) -> Path:
        try:
            self.nc.close()
            ds.to_netcdf(self.tmp, mode="a", engine="netcdf4", encoding=_encoding(ds))
            replace_atomically(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        try:
            if self.nc.isopen():
                self.nc.close()
        finally:
            Path(self.tmp).unlink(missing_ok=True)
