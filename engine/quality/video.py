"""Reading a video for scoring: decode with PyAV, shrink every frame to the working size, sample frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

# Frames are scored at this short side (never upscaled). Flow, brightness and CLIP all work well at 256 px
# (CLIP crops 224 px anyway), and at it a 720×1280 frame is 256×455: 121 such frames are 42 MB as RGB.
WORKING_SHORT_SIDE = 256

# The CLIP metrics read at most this many frames, spread evenly from the first to the last; the motion and
# temporal metrics read every frame. 32 because the Wan models make 81–121 frames and their VAE decodes
# each latent frame into 4 video frames (121 frames = 1 + 4·30: 31 latent frames): 32 samples are about one
# per latent frame, at most ~4 frames (0.17–0.25 s at 16–24 fps) apart. CLIP content changes little in that
# gap, so clip_score's mean hardly moves, clip_score_min still sees a glitch lasting 4 frames, and
# subject_consistency compares frames ~4 apart instead of VBench's 1 (16 samples would put them 8 apart).
# The cost is linear in the count: ViT-B/32 embeds 32 frames in 4–7 s on two (shared) CPU cores, in tens of
# milliseconds on the worker's GPU. Every frame of a video of up to 32 frames is read, so one of up to 16
# frames is scored exactly as before this cap (the earlier sample was 16 frames for every metric).
CLIP_MAX_FRAMES = 32


class VideoUnreadable(ValueError):
    """The video file is missing, is not a video, or has no decodable frame."""


@dataclass(frozen=True)
class SampledVideo:
    """A decoded video at the working size: every frame in grey, and a uniform sample of frames in RGB.

    `grey` has shape (frame_count, h, w), uint8, every decoded frame (for the motion and temporal metrics);
    `frames` has shape (T, h, w, 3), RGB uint8, the frames at `indices` among the `frame_count` decoded
    ones (for the CLIP metrics); `width` and `height` are the video's own size, `pixel_scale` = video short
    side / working short side (multiply a working-size displacement by it to get pixels of the video).
    """

    frames: np.ndarray
    indices: tuple[int, ...]
    frame_count: int
    width: int
    height: int
    fps: float | None
    grey: np.ndarray

    @property
    def pixel_scale(self) -> float:
        return min(self.width, self.height) / min(self.frames.shape[1], self.frames.shape[2])


def working_size(width: int, height: int, short_side: int = WORKING_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) with the short side brought down to `short_side`, aspect kept, never upscaled."""
    scale = min(1.0, short_side / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def sample_indices(frame_count: int, max_frames: int) -> tuple[int, ...]:
    """Up to `max_frames` frame positions spread uniformly from the first to the last frame (both kept)."""
    if frame_count <= max_frames:
        return tuple(range(frame_count))
    return tuple(int(round(i)) for i in np.linspace(0, frame_count - 1, max_frames))


def read_video(path: Path, max_frames: int = CLIP_MAX_FRAMES) -> SampledVideo:
    """Decode `path`: every frame in grey, and up to `max_frames` RGB frames spread uniformly in time.

    Raises VideoUnreadable when the file is missing, is not a video or yields no frame.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames {max_frames} must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise VideoUnreadable(f"video {path} does not exist")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoUnreadable(f"video {path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = float(stream.average_rate) if stream.average_rate else None
            for frame in container.decode(stream):
                if not frames:
                    width, height = frame.width, frame.height
                small_w, small_h = working_size(width, height)
                small = frame.reformat(width=small_w, height=small_h, format="rgb24", interpolation="AREA")
                frames.append(small.to_ndarray())
    except av.FFmpegError as error:
        raise VideoUnreadable(f"video {path} could not be decoded: {error}") from error
    if not frames:
        raise VideoUnreadable(f"video {path} has no decodable frame")
    indices = sample_indices(len(frames), max_frames)
    return SampledVideo(
        frames=np.stack([frames[i] for i in indices]),
        indices=indices,
        frame_count=len(frames),
        width=width,
        height=height,
        fps=fps,
        grey=np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]),
    )
