"""Writing the video: H.264 in yuv420p (what every browser plays), plus a thumbnail."""

from __future__ import annotations

import errno
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from data.atomic import DiskFullError, write_atomically


def to_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) floats in [0, 1] (diffusers' output_type="np") → uint8."""
    frames = np.asarray(frames)
    if frames.ndim == 5:  # (batch, F, H, W, C): one video per job
        frames = frames[0]
    if frames.dtype != np.uint8:
        frames = (np.nan_to_num(frames.astype(np.float32), nan=0.0).clip(0, 1) * 255 + 0.5).astype(np.uint8)
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode atomically; yuv420p needs even sides, so an odd edge row/column is dropped."""
    frames = to_uint8_frames(frames)
    n, h, w = frames.shape[:3]
    h2, w2 = h - h % 2, w - w % 2

    def encode(tmp: Path) -> None:
        # faststart is the muxer's option (the stream's options never reach it): `moov` is moved before `mdat`,
        # so a browser starts playing before the whole file has arrived.
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(int(fps), 1))
            stream.width, stream.height = w2, h2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "medium"}
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h2, :w2]), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    try:
        write_atomically(path, encode)
    except av.error.FFmpegError as exc:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space" in str(exc):
            raise DiskFullError(errno.ENOSPC, f"no space left to write {path.name}; free space under {path.parent}") from exc
        raise


def write_thumbnail(path: Path, frames: np.ndarray, *, max_side: int = 320) -> None:
    frames = to_uint8_frames(frames)
    image = Image.fromarray(frames[len(frames) // 2])
    image.thumbnail((max_side, max_side))
    write_atomically(path, lambda tmp: image.save(tmp, format="JPEG", quality=85))
