"""netCDF output: atomic writes (temporary name, then rename) with compression, and reading back.

Every file sde_com writes (netCDF, PNG, checkpoints, the JSON Schema) goes through ``atomic_output``: an
existing output is refused without ``force``, the data go to a temporary file beside it, which is renamed
into place with the usual permissions when complete and removed on any failure.

Files follow CF-1.8 (attributes from ``sde_com.results.catalogue.apply_catalogue``): integers are int32, booleans
int8 flags (read back as bool), strings character arrays with a ``NAME_strlen`` dimension (read back as str),
coordinates carry no ``_FillValue``, and every write adds a ``history`` line (an ISO UTC timestamp and the
command that made the file).

On disk a time axis is indexed by ``time_scaled`` (ω_ref·t, the unit of every time in a scenario), with
``time`` in seconds beside it as an auxiliary coordinate. CF tools take a dimension named ``time`` for a
calendar axis (standard_name ``time``, units "s since <epoch>"), which a simulated time without an epoch is
not. ``read_dataset`` indexes it by ``time`` again, so the round trip is identical.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import netCDF4
import numpy as np
import xarray as xr

API_HISTORY = "sde_com.write_dataset"
TIME, TIME_ON_DISK = "time", "time_scaled"  # the time dimension in memory and in a file


def to_disk_layout(ds: xr.Dataset) -> xr.Dataset:
    """Index the time axis by ``time_scaled`` for the file (see the module docstring)."""
    if TIME in ds.dims and TIME_ON_DISK in ds.coords:
        return ds.swap_dims({TIME: TIME_ON_DISK})
    return ds


def from_disk_layout(ds: xr.Dataset) -> xr.Dataset:
    """Index the time axis by ``time`` (seconds) again, as every run returns it."""
    if TIME_ON_DISK in ds.dims and TIME in ds.coords:
        return ds.swap_dims({TIME_ON_DISK: TIME})
    return ds


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


class AtomicOutput:
    """A temporary file beside ``path`` that becomes ``path`` when complete (see ``atomic_output``).

    ``tmp``: where to write.  ``commit()``: rename it into place with the usual permissions.
    ``discard()``: remove it.  As a context manager: yields ``tmp``, commits on success, discards on any
    exception (KeyboardInterrupt included) and re-raises it.
    """

    def __init__(self, path: str | Path, force: bool = False, suffix: str = ".tmp"):
        self.path = check_writable(path, force)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        replace_atomically(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


def atomic_output(path: str | Path, force: bool = False, suffix: str = ".tmp") -> AtomicOutput:
    """The one way sde_com writes a file: ``with atomic_output(path, force) as tmp: <write tmp>``.

    Refuses an existing ``path`` unless ``force`` (FileExistsError) and a missing folder (FileNotFoundError)
    before anything is written; the data go to ``tmp`` beside ``path`` (``suffix``: its ending, for writers
    that go by it), renamed to ``path`` when the block completes; on any failure ``tmp`` is removed and
    ``path`` is untouched. For a write that spans calls, use the returned ``AtomicOutput``'s ``tmp``,
    ``commit()`` and ``discard()``.
    """
    return AtomicOutput(path, force, suffix)


def encoding(ds: xr.Dataset) -> dict:
    """The netCDF encoding of ``ds``: compressed numeric data, no _FillValue on coordinates, int32 for
    integers, strings as CF character arrays (``NAME_strlen``)."""
    enc = {}
    for name, var in ds.variables.items():
        e = {}
        if name in ds.coords:
            e["_FillValue"] = None
        if var.dtype.kind in "fiu" and name in ds.data_vars:
            e.update(zlib=True, complevel=4)
        if var.dtype.kind in "iu" and var.dtype.itemsize > 4:
            e["dtype"] = "int32"
        if var.dtype.kind in "USO":
            e.update(dtype="S1", char_dim_name=f"{name}_strlen", _FillValue=None)
        enc[name] = e
    return enc


def history_line(command: str | None = None) -> str:
    """One ``history`` entry: an ISO 8601 UTC timestamp and the command (default: the API call)."""
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return f"{stamp} {command or API_HISTORY}"


def _with_history(ds: xr.Dataset, command: str | None) -> xr.Dataset:
    ds = ds.copy(deep=False)
    old = ds.attrs.get("history")
    line = history_line(command)
    ds.attrs["history"] = f"{old}\n{line}" if old else line
    return ds


def write_dataset(ds: xr.Dataset, path: str | Path, force: bool = False, history: str | None = None) -> Path:
    """Write ``ds`` as CF-1.8 netCDF4 to ``path`` atomically: a temporary file beside it, renamed when complete.

    An interrupted write leaves no partial file under ``path``; an existing file is kept unless ``force``.
    ``history``: the command that made the file (the CLI passes its command line; default: this API call),
    appended with a timestamp to the ``history`` attribute.
    """
    out = atomic_output(path, force)
    with out as tmp:
        ds = to_disk_layout(_with_history(ds, history))
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding(ds))
    return out.path


def read_dataset(path: str | Path) -> xr.Dataset:
    """Open a netCDF file written by sde_com, fully loaded into memory (the file is closed on return).

    String variables come back as ``str`` arrays (``ds.sel(direction="ccw")`` works), flags as bool.
    """
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return from_disk_layout(decode_strings(ds.load()))


def decode_strings(ds: xr.Dataset) -> xr.Dataset:
    """Object arrays of str (how xarray decodes CF character arrays) as fixed-width ``str`` arrays."""
    for name, var in list(ds.variables.items()):
        if var.dtype == object and all(isinstance(v, str) for v in var.values.ravel()):
            values = np.asarray(var.values.tolist(), dtype=str).reshape(var.shape)
            new = xr.Variable(var.dims, values, var.attrs, var.encoding)
            if name in ds.coords:
                ds = ds.assign_coords({name: new})
            else:
                ds[name] = new
    return ds


class StreamedNetCDF:
    """A netCDF file written in pieces: large variables slab by slab as they are produced, then the rest
    of the Dataset, then an atomic rename. Memory stays bounded by one slab, not the whole variable.

    Usage: ``w = StreamedNetCDF(path, force, dims, {name: (dims, attrs)})``; ``w.write(name, index, data)``
    any number of times; ``w.finish(ds)`` (ds: everything else, with coordinates) or ``w.abort()``.
    """

    def __init__(self, path: str | Path, force: bool, dims: dict[str, int],
                 variables: dict[str, tuple[tuple[str, ...], dict]]):
        self.out = atomic_output(path, force)
        self.path, self.tmp = self.out.path, self.out.tmp
        try:
            self.nc = netCDF4.Dataset(str(self.tmp), "w", format="NETCDF4")
        except BaseException:
            self.out.discard()
            raise
        rename = {TIME: TIME_ON_DISK}  # the file's layout (module docstring)
        dims = {rename.get(d, d): size for d, size in dims.items()}
        for name, size in dims.items():
            self.nc.createDimension(name, size)
        self.vars = {}
        for name, (vdims, attrs) in variables.items():
            vdims = tuple(rename.get(d, d) for d in vdims)
            chunks = [1] * (len(vdims) - 2) + [min(dims[vdims[-2]], 8192), dims[vdims[-1]]]
            var = self.nc.createVariable(name, "f8", vdims, zlib=True, complevel=4, fill_value=np.nan,
                                         chunksizes=chunks)
            var.setncatts(attrs)
            self.vars[name] = var

    def write(self, name: str, index, data) -> None:
        self.vars[name][index] = data

    def finish(self, ds: xr.Dataset, history: str | None = None) -> Path:
        """Add ``ds`` (coordinates, the other variables, global attributes with a ``history`` line as in
        ``write_dataset``) to the streamed variables and rename the file into place."""
        try:
            ds = to_disk_layout(_with_history(ds, history))
            for var in self.vars.values():  # the auxiliary coordinates on their dimensions (time)
                aux = [c for c in ds.coords if c not in ds.dims and set(ds[c].dims) <= set(var.dimensions)]
                if aux:
                    var.setncattr("coordinates", " ".join(aux))
            self.nc.close()
            ds.to_netcdf(self.tmp, mode="a", engine="netcdf4", encoding=encoding(ds))
            self.out.commit()
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        try:
            if self.nc.isopen():
                self.nc.close()
        finally:
            self.out.discard()
