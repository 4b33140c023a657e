"""atomic_output, the one way sde_com writes a file: refuses an existing output without force, writes beside
it, renames on success with the usual permissions, leaves nothing behind on failure."""

import os

import pytest

from sde_com.results.io import atomic_output


def test_writes_and_renames_with_the_usual_permissions(tmp_path):
    path = tmp_path / "out.txt"
    with atomic_output(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path and not path.exists()
        tmp.write_text("new")
    assert path.read_text() == "new" and list(tmp_path.iterdir()) == [path]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_refuses_an_existing_output_without_force(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(FileExistsError, match="exists"):
        atomic_output(path)
    with atomic_output(path, force=True) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_output(tmp_path / "missing" / "out.txt")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(error), atomic_output(path, force=True, suffix=".png") as tmp:
        assert tmp.name.endswith(".png")
        tmp.write_text("partial")
        raise error
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
