"""An exported MP4 streams: its `moov` atom (the index a player needs first) comes before `mdat`."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from engine.worker.export import write_mp4


def top_level_atoms(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes in file order (ISO/IEC 14496-12: 32-bit size, 4-char type,
    size 1 → a 64-bit size follows, size 0 → to the end of the file)."""
    data = path.read_bytes()
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        assert size >= 8, f"corrupt box at {offset}"
        atoms.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(data), "boxes do not add up to the file"
    return atoms


def test_an_exported_video_has_moov_before_mdat(tmp_path):
    frames = np.random.default_rng(0).random((6, 64, 96, 3), dtype=np.float32)
    path = tmp_path / "clip.mp4"
    write_mp4(path, frames, fps=8)
    atoms = top_level_atoms(path)
    assert "moov" in atoms and "mdat" in atoms
    assert atoms.index("moov") < atoms.index("mdat"), atoms
