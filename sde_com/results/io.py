"""netCDF output: atomic writes (temporary name, then rename), streamed writes, and reading back.

Every file sde_com writes (netCDF, PNG, checkpoint states, the JSON Schema) goes through ``atomic_output``
(an existing output is refused without ``force``, the data go to a temporary file beside it, which is
renamed into place with the usual permissions when complete and removed on any failure), or, for an output
written while its run goes (``StreamedNetCDF``), is built in the run's checkpoint folder and renamed into
place when complete.

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

import errno
import math
import os
import queue
import sys
import tempfile
import threading
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


PARTS_SUFFIX = ".parts"  # a run's checkpoint folder: OUT.parts beside the output (runs.engine)


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Refuse, naming the path, an output that must not or cannot be written, before any work:

    - an existing output (a dangling symbolic link counts) unless ``force``: FileExistsError;
    - a directory, even with ``force``: IsADirectoryError;
    - a missing parent folder (FileNotFoundError), a parent that is not a folder (NotADirectoryError), or one
      this process cannot write, a read-only file system included (PermissionError);
    - a name longer than the file system takes with the checkpoint folder's suffix (FileNotFoundError: the
      name cannot exist there; also a path the system refuses as too long).
    """
    path = Path(path)
    try:
        return _check_writable(path, force)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:  # the FileExistsError etc. above carry no errno
            raise
        raise FileNotFoundError(f"output {str(path)!r}: a name too long for its file system") from None


def _check_writable(path: Path, force: bool) -> Path:
    if "\\" in str(path):  # netCDF-C takes it for a separator and fails with EACCES
        raise PermissionError(f"output {str(path)!r}: sde-com cannot write a path with a backslash (the netCDF "
                              "library takes it for a separator); give another name")
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a directory; give a file name")
    if os.path.lexists(path) and not force:
        raise FileExistsError(f"output {str(path)!r} exists; pass --force (force=True) to overwrite it")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"output folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"output folder {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(parent)!r} is not writable (permissions or a read-only file "
                              "system)")
    try:
        longest = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # no limit known
        longest = None
    if longest is not None and len(os.fsencode(path.name + PARTS_SUFFIX)) > longest:
        raise FileNotFoundError(f"output name {path.name!r} is too long for its file system ({longest} bytes "
                                f"at most, with the {PARTS_SUFFIX!r} of its checkpoint folder)")
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
    """The netCDF encoding of ``ds``: no _FillValue on coordinates, int32 for integers, strings as CF
    character arrays (``NAME_strlen``). Uncompressed, chosen by measurement: zlib (level 4, or 1 with shuffle)
    made float64 estimates only 18 % smaller at 6–7× the write time (docs/performance.md)."""
    enc = {}
    for name, var in ds.variables.items():
        e = {}
        if name in ds.coords:
            e["_FillValue"] = None
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


def _to_netcdf(ds: xr.Dataset, path: Path, mode: str = "w") -> None:
    """``ds.to_netcdf`` (netCDF4 engine, ``encoding``). xarray asks Dask which scheduler is active, to know
    whether to close the file between writes of dask arrays, and Dask imports ``distributed`` to answer:
    0.13 s a write, in every run. Where ``distributed`` is not loaded there is no cluster to find, so the
    lookup is answered "none" by marking the module absent for the call (the ImportError both catch)."""
    lookup = "distributed" not in sys.modules
    if lookup:
        sys.modules["distributed"] = None  # type: ignore[assignment]
    try:
        ds.to_netcdf(path, mode=mode, engine="netcdf4", encoding=encoding(ds))
    finally:
        if lookup and sys.modules.get("distributed", False) is None:
            del sys.modules["distributed"]


def write_dataset(ds: xr.Dataset, path: str | Path, force: bool = False, history: str | None = None) -> Path:
    """Write ``ds`` as CF-1.8 netCDF4 to ``path`` atomically: a temporary file beside it, renamed when complete.

    An interrupted write leaves no partial file under ``path``; an existing file is kept unless ``force``.
    ``history``: the command that made the file (the CLI passes its command line; default: this API call),
    appended with a timestamp to the ``history`` attribute.
    """
    out = atomic_output(path, force)
    with out as tmp:
        ds = to_disk_layout(_with_history(ds, history))
        _to_netcdf(ds, tmp)
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


def flat_slabs(start: int, stop: int, shape: tuple[int, ...]):
    """The flat C-order points [start, stop) of a grid of ``shape`` as hyperslabs: yields (index, offset,
    slab shape), ``index`` a tuple of slices into the grid and ``offset`` the slab's first point counted from
    ``start``; at most 2 len(shape) − 1 slabs, in order."""
    if not shape:
        if start < stop:
            yield (), 0, ()
        return
    inner = math.prod(shape[1:])
    head, tail = shape[0], shape[1:]
    a, b = divmod(start, inner)
    c, e = divmod(stop, inner)
    if a == c:  # within one row of the leading axis: recurse into it
        for index, off, sub in flat_slabs(b, e, tail):
            yield (slice(a, a + 1), *index), off, (1, *sub)
        return
    off = 0
    if b:  # the partial first row
        for index, o, sub in flat_slabs(b, inner, tail):
            yield (slice(a, a + 1), *index), o, (1, *sub)
        off, a = inner - b, a + 1
    if c > a:  # whole rows
        yield (slice(a, c), *(slice(0, n) for n in tail)), off, (c - a, *tail)
        off += (c - a) * inner
    if e and c < head:  # the partial last row
        for index, o, sub in flat_slabs(0, e, tail):
            yield (slice(c, c + 1), *index), off + o, (1, *sub)


CHUNK_BYTES = 1 << 20  # ~1 MiB chunks of a streamed variable with an unlimited dimension


def chunk_shape(shape: tuple[int, ...], itemsize: int = 8) -> tuple[int, ...]:
    """Chunks of about CHUNK_BYTES for a variable of ``shape`` (unlimited axes given as 1): whole trailing
    axes while they fit, then part of the next axis, 1 on the axes before it."""
    chunks = [1] * len(shape)
    room = max(1, CHUNK_BYTES // itemsize)
    for axis in range(len(shape) - 1, -1, -1):
        take = min(shape[axis], room)
        chunks[axis] = max(1, take)
        room //= max(1, shape[axis])
        if take < shape[axis] or room < 1:
            break
    return tuple(chunks)


class _Writer:
    """One thread running calls in the order given, at most one waiting (``submit`` blocks until there is
    room). A failure is kept and raised by every later ``submit`` and ``drain``; the calls after it are
    skipped."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="sde_com-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    item[0](*item[1])
            except BaseException as exc:  # raised in the caller's thread by the next submit or drain
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, fn, *args) -> None:
        self._check()
        self.queue.put((fn, args))

    def drain(self) -> None:
        """Wait until every call submitted has run; raise the failure of any."""
        self.queue.join()
        self._check()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()


class StreamedNetCDF:
    """A netCDF file written in pieces: large variables slab by slab as they are produced (in any order),
    then the rest of the Dataset, then an atomic rename to the output. Memory stays bounded by one slab.

    ``path``: the file being written (a scratch file in the run's checkpoint folder; ``resume`` reopens it).
    ``dims``: {name: size}, None for an unlimited dimension (a sweep's ``branch``, whose size is the most
    branches of any point, known when the last block is in). ``variables``: {name: (dims, dtype, attrs, fill)};
    dtype "f8", "i1" (a flag, written from bool) or "i4"; ``fill``: the value of what is never written (NaN
    beyond a point's branches), or None for a variable written whole (no fill pass at creation).
    Streamed variables are stored uncompressed, chosen by measurement: compression costs more than the chain
    that fills a sweep, and noise does not compress. A variable without an unlimited dimension is contiguous
    (its place in the file is fixed when it is created); one with it is chunked by ``chunk_shape``.
    """

    def __init__(self, path: str | Path, dims: dict[str, int | None],
                 variables: dict[str, tuple[tuple[str, ...], str, dict, object]], resume: bool = False):
        self.path = Path(path)
        self.writer: _Writer | None = None
        rename = {TIME: TIME_ON_DISK}  # the file's layout (module docstring)
        if resume:  # OSError when it is missing or unreadable (runs.mergers.open_stream starts again then)
            self.nc = netCDF4.Dataset(str(self.path), "a")
            try:
                self.vars = {name: self.nc.variables[name] for name in variables}
            except KeyError:
                self.nc.close()
                raise
            for var in self.vars.values():
                var.set_auto_maskandscale(False)
            return
        self.nc = netCDF4.Dataset(str(self.path), "w", format="NETCDF4")
        try:
            for name, size in dims.items():
                self.nc.createDimension(rename.get(name, name), size)
            self.vars = {}
            for name, (vdims, dtype, attrs, fill) in variables.items():
                fill = False if fill is None else fill
                shape = tuple(dims[d] for d in vdims)
                layout = (dict(contiguous=True) if None not in shape
                          else dict(chunksizes=chunk_shape(tuple(1 if n is None else n for n in shape))))
                var = self.nc.createVariable(name, dtype, tuple(rename.get(d, d) for d in vdims),
                                             fill_value=fill, **layout)
                var.set_auto_maskandscale(False)
                var.setncatts(attrs)
                self.vars[name] = var
            self.nc.sync()
        except BaseException:
            self.abort()
            raise

    def write(self, name: str, index, data) -> None:
        """``variable[index] = data``, in the background: a writer thread makes the writes in order while the
        caller goes on (netCDF4 releases the GIL as it writes, so the next unit computes meanwhile; measured
        on noise traces, the write was a fifth of the run). At most one write waits, so memory holds two
        writes' ``data``, which must not change after the call. A failed write is raised by a later call
        (``write``, ``sync``, ``finish``)."""
        if self.writer is None:
            self.writer = _Writer()
        self.writer.submit(self.vars[name].__setitem__, index, data)

    def write_now(self, name: str, index, data) -> None:
        """``variable[index] = data`` in the caller's thread, after every background write: for a caller that
        also reads netCDF files meanwhile (HDF5 takes one thread at a time)."""
        self._drain()
        self.vars[name][index] = data

    def _drain(self) -> None:
        """The file as the caller's thread sees it: every background write made (its failure raised)."""
        if self.writer is not None:
            self.writer.drain()

    def write_points(self, name: str, start: int, data: np.ndarray, grid: tuple[int, ...], tail: tuple = ()) -> None:
        """Write the flat C-order points [start, start + len(data)) of the variable's leading ``grid`` axes;
        ``data``: (points, rest of the variable's axes, or of the part ``tail`` (an index) selects)."""
        self._drain()
        data = np.asarray(data)
        if data.dtype == bool:
            data = data.astype(np.int8)
        rest = data.shape[1:]
        for index, off, sub in flat_slabs(start, start + data.shape[0], grid):
            n = math.prod(sub)
            self.vars[name][(*index, *tail)] = data[off:off + n].reshape((*sub, *rest))

    def sync(self) -> None:
        """Hand everything written so far to the operating system (a checkpoint may then count on it)."""
        self._drain()
        self.nc.sync()

    def finish(self, ds: xr.Dataset, output: str | Path, force: bool, history: str | None = None) -> Path:
        """Add ``ds`` (coordinates, the other variables, global attributes with a ``history`` line as in
        ``write_dataset``) to the streamed variables and rename the file to ``output`` atomically."""
        output = check_writable(output, force)
        self._drain()
        ds = to_disk_layout(_with_history(ds, history))
        for var in self.vars.values():  # the auxiliary coordinates on their dimensions (time)
            aux = [c for c in ds.coords if c not in ds.dims and set(ds[c].dims) <= set(var.dimensions)]
            if aux:
                var.setncattr("coordinates", " ".join(aux))
        self.close()
        _to_netcdf(ds, self.path, mode="a")
        replace_atomically(self.path, output)
        return output

    def close(self) -> None:
        """Stop the writer (after the writes it has; a failure among them is not raised: closing follows a
        stop or a failure already reported) and close the file."""
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        if self.nc.isopen():
            self.nc.close()

    def abort(self) -> None:
        """Close and remove the file."""
        try:
            self.close()
        finally:
            self.path.unlink(missing_ok=True)
