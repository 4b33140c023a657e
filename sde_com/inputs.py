"""Files a user names as input (a scenario, a [drive] file): checked to be regular files of a bounded size
before they are read, so that a device (``/dev/zero``), a FIFO or a huge file is refused with a message
instead of exhausting memory or waiting forever."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sde_com.errors import UserError

MAX_SCENARIO_BYTES = 16 * 2**20  # a scenario is a short text; 16 MiB holds a save_times list of ~1e6 values
MAX_DRIVE_FILE_BYTES = 64 * 2**20  # two text columns: ~2e6 samples of a drive envelope


def check_input_file(path: str | Path, what: str, max_bytes: int | None) -> Path:
    """``path`` if it is a regular file (after symbolic links) of at most ``max_bytes`` (None: any size, for a file
    read in blocks); else a UserError naming ``what``, the path and the limit. Opening is not needed: ``stat``
    does not block on a FIFO."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UserError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{what} {str(path)!r} is not a regular file (a device, FIFO, socket or folder)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise UserError(f"{what} {str(path)!r} is {info.st_size / 2**20:.1f} MiB; at most {max_bytes // 2**20} MiB "
                        "is read")
    return path
