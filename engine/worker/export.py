"""Writing the video: H.264 in yuv420p (what every browser plays), with an AAC soundtrack where the model made
one, plus a thumbnail."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Soundtrack:
    """A generated waveform: float samples in [-1, 1], (channels, samples), at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


def fit_soundtrack(soundtrack: Soundtrack, frames: int, fps: int) -> Soundtrack:
    """The soundtrack cut or padded with silence to the video's length (frames / fps), so the streams end
    together: LTX-2's audio latents are counted from the duration and rounded, a few milliseconds off."""
    samples = np.asarray(soundtrack.samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None, :]
    target = round(frames / fps * soundtrack.sample_rate)
    if samples.shape[1] >= target:
        samples = samples[:, :target]
    else:
        samples = np.pad(samples, ((0, 0), (0, target - samples.shape[1])))
    return Soundtrack(np.ascontiguousarray(np.nan_to_num(samples).clip(-1.0, 1.0)), soundtrack.sample_rate)


def _add_audio_stream(container: Any, soundtrack: Soundtrack) -> Any:
    """An AAC stream (what browsers play beside H.264) in the waveform's rate and channel layout."""
    stream = container.add_stream("aac", rate=soundtrack.sample_rate)
    stream.layout = "stereo" if soundtrack.samples.shape[0] >= 2 else "mono"
    stream.bit_rate = 128_000 if soundtrack.samples.shape[0] >= 2 else 64_000
    return stream


def _encode_audio(container: Any, stream: Any, soundtrack: Soundtrack) -> None:
    """Encode the waveform in chunks of 1024 samples (AAC's frame) with running timestamps; the encoder's
    priming delay is written as the track's edit list, so players start in sync with the first frame."""
    channels = 2 if stream.layout.name == "stereo" else 1
    samples = soundtrack.samples[:channels]
    for start in range(0, samples.shape[1], 1024):
        chunk = np.ascontiguousarray(samples[:, start:start + 1024])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = soundtrack.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, soundtrack.sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_mp4(path: Path, frames: np.ndarray, fps: int, soundtrack: Soundtrack | None = None) -> None:
    """Encode atomically; yuv420p needs even sides, so an odd edge row/column is dropped. A soundtrack, fitted
    to the video's length, goes in as an AAC stream beside the video."""
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
            audio_stream = _add_audio_stream(container, soundtrack) if soundtrack is not None else None
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h2, :w2]), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if audio_stream is not None:
                _encode_audio(container, audio_stream, fit_soundtrack(soundtrack, n, fps))

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
