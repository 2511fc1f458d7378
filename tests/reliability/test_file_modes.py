"""Files the product writes follow the umask, as files made with open() do (issue 26: the atomic writer made
videos, Parquet and live files 0600 whatever the umask, so a web server or a backup under another user could
not read them)."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.atomic import write_atomically, write_bytes_atomically


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    before = os.umask(0o022)
    try:
        yield set_umask
    finally:
        os.umask(before)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomically_written_files_get_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    live, table, replaced = tmp_path / "live.json", tmp_path / "part.parquet", tmp_path / "video.mp4"
    write_bytes_atomically(live, b"{}")
    write_atomically(table, lambda tmp: pq.write_table(pa.table({"a": [1, 2]}), tmp))
    replaced.write_bytes(b"old")
    write_atomically(replaced, lambda tmp: tmp.write_bytes(b"new"))
    for path in (live, table, replaced):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name
    assert replaced.read_bytes() == b"new" and pq.read_table(table).num_rows == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.json", "part.parquet", "video.mp4"]  # no temporaries


def test_a_failed_write_leaves_no_temporary_file(tmp_path, umask):
    def fail(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "x.bin", fail)
    assert list(tmp_path.iterdir()) == []
