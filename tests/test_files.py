"""Atomic writes: the new file appears whole or not at all."""

import os

import pytest

from jaxembed.files import atomic_open


@pytest.mark.parametrize("mode, content", [("wb", b"new \x00 bytes"), ("w", "new text, ü")])
def test_atomic_open_replaces_the_file(tmp_path, mode, content):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old")
    with atomic_open(path, mode) as f:
        f.write(content)
    expected = content if isinstance(content, bytes) else content.encode()
    assert path.read_bytes() == expected
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_permissions_follow_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "out.txt") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_open(tmp_path / "out.txt", "a"):
            pass
