"""Motion and temporal metrics from Farneback optical flow; numpy and OpenCV only, no weights.

All metrics work on every pair of consecutive frames of the video, so "per frame step" is per frame of the
video (the CLIP metrics, not these, read a sample of frames). Flow is computed on grey frames at the
working size (short side 256, see video.WORKING_SHORT_SIDE) and reported in pixels of the video (scaled
back by `pixel_scale`). Pairs are processed one at a time and only per-pair numbers are kept, so memory
does not grow with the frame count beyond the frames themselves (a 121-frame 720×1280 video is 14 MB of
grey frames at the working size).

- smoothness_std: the seed's metric, the standard deviation over frame pairs of the mean flow magnitude
  (pixels). Lower is smoother. Needs 3 frames.
- mean_flow: the mean over frame pairs of the mean flow magnitude (pixels per step). Needs 2 frames.
- jerk: camera shake. Per pair, the mean flow vector (the global translation, pixels per step); jerk is the
  mean magnitude of its second difference over time, i.e. how much the image's velocity changes its
  change. A steady pan (constant velocity) and a smooth acceleration give ≈ 0; a shaking camera, whose
  velocity flips from step to step, gives about the size of the shake. Needs 4 frames.
- dynamic_degree: VBench's rule per pair: the mean of the top 5 % flow magnitudes exceeds
  6 · min(h, w) / 256 pixels (h, w of the frames the flow is computed on, so the threshold scales with
  resolution). The fraction of pairs above it: ≈ 0 for a frozen video, 1 for one that moves throughout.
  VBench uses RAFT and reports one yes/no per video; this is Farneback and a fraction. Needs 2 frames.
- flicker: brightness change that motion does not explain. Frame t+1 is warped back onto frame t with the
  flow; on a 4×4 grid of blocks the mean grey-level difference (valid pixels only) is taken, so a whole
  block getting brighter or darker counts while flow errors, which scatter both ways, mostly cancel. The
  mean absolute block difference over blocks and pairs, divided by 255: 0 to 1, higher is more flicker.
  Needs 2 frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Farneback parameters (OpenCV's documented example values); 3 pyramid levels follow ~8 px per step at 256 px.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)

# VBench dynamic degree: the top 5 % of flow magnitudes, against 6 px at a 256 px short side.
DYNAMIC_TOP_FRACTION = 0.05
DYNAMIC_THRESHOLD_PX_AT_256 = 6.0

FLICKER_GRID = 4

METRIC_MIN_FRAMES = {"mean_flow": 2, "dynamic_degree": 2, "flicker": 2, "smoothness_std": 3, "jerk": 4}


@dataclass(frozen=True)
class MotionMetrics:
    """The motion and temporal metrics of one video; a None metric has its reason in `reasons`."""

    smoothness_std: float | None
    mean_flow: float | None
    jerk: float | None
    dynamic_degree: float | None
    flicker: float | None
    reasons: dict[str, str] = field(default_factory=dict)


def farneback_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Flow from one grey frame to the next: (h, w, 2) float32, in working-size pixels."""
    return cv2.calcOpticalFlowFarneback(first, second, None, **FARNEBACK)


def dynamic_threshold(height: int, width: int) -> float:
    """VBench's resolution-scaled motion threshold, in pixels at (height, width)."""
    return DYNAMIC_THRESHOLD_PX_AT_256 * min(height, width) / 256.0


def top_magnitude(magnitude: np.ndarray, fraction: float = DYNAMIC_TOP_FRACTION) -> np.ndarray:
    """Per pair, the mean of the largest `fraction` of flow magnitudes. magnitude: (P, h, w) -> (P,)."""
    flat = magnitude.reshape(len(magnitude), -1)
    k = max(1, int(flat.shape[1] * fraction))
    return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def jerk_of(mean_vectors: np.ndarray) -> float:
    """Mean magnitude of the second difference of the per-pair mean flow vectors (P, 2), P >= 3."""
    return float(np.linalg.norm(np.diff(mean_vectors, n=2, axis=0), axis=1).mean())


def block_brightness_change(
    grey: np.ndarray, grey_next: np.ndarray, flow: np.ndarray, grid: int = FLICKER_GRID, coords=None
) -> float | None:
    """Mean absolute motion-compensated block brightness change from `grey` to `grey_next`, grey levels.

    None when no block has a valid pixel. `coords` is np.mgrid[0:h, 0:w] as float32, to reuse across pairs.
    """
    h, w = grey.shape
    ys, xs = coords if coords is not None else np.mgrid[0:h, 0:w].astype(np.float32)
    bh, bw = h // grid, w // grid
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(grey_next.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    diff = np.where(valid, warped - grey.astype(np.float32), 0.0)[: bh * grid, : bw * grid]
    valid = valid[: bh * grid, : bw * grid]
    block_sum = diff.reshape(grid, bh, grid, bw).sum(axis=(1, 3))
    block_count = valid.reshape(grid, bh, grid, bw).sum(axis=(1, 3))
    filled = block_count > 0
    return np.abs(block_sum[filled] / block_count[filled]).mean() if filled.any() else None


def flicker_from(changes: list[float | None]) -> float:
    """The flicker metric, 0..1, from the per-pair block brightness changes (None: no valid block)."""
    changes = [change for change in changes if change is not None]
    return float(np.mean(changes) / 255.0) if changes else 0.0


def motion_metrics(frames: np.ndarray, pixel_scale: float = 1.0) -> MotionMetrics:
    """Motion and temporal metrics of every consecutive pair of `frames`, in pixels × `pixel_scale`.

    `frames`: grey uint8 (T, h, w), or RGB uint8 (T, h, w, 3) converted to grey here.
    """
    count = len(frames)
    reasons = {
        name: f"needs at least {needed} frames, the video has {count}"
        for name, needed in METRIC_MIN_FRAMES.items()
        if count < needed
    }
    if count < 2:
        return MotionMetrics(None, None, None, None, None, reasons)

    grey = frames if frames.ndim == 3 else np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])
    h, w = grey.shape[1:]
    coords = np.mgrid[0:h, 0:w].astype(np.float32)
    pairs = count - 1
    pair_mean = np.empty(pairs, np.float32)  # mean flow magnitude, working pixels
    mean_vectors = np.empty((pairs, 2), np.float32)  # mean flow vector, working pixels
    pair_top = np.empty(pairs, np.float32)  # mean of the top 5 % magnitudes, working pixels
    changes: list[float | None] = []
    for t in range(pairs):  # one flow field at a time: memory stays flat however long the video
        flow = farneback_flow(grey[t], grey[t + 1])[None]  # (1, h, w, 2), reduced as the stacked array was
        magnitude = np.linalg.norm(flow, axis=-1)
        pair_mean[t] = magnitude.mean(axis=(1, 2))[0]
        mean_vectors[t] = flow.mean(axis=(1, 2))[0]
        pair_top[t] = top_magnitude(magnitude)[0]
        changes.append(block_brightness_change(grey[t], grey[t + 1], flow[0], coords=coords))
    pair_mean_px = pair_mean * pixel_scale
    threshold = dynamic_threshold(h, w)

    return MotionMetrics(
        smoothness_std=float(pair_mean_px.std()) if "smoothness_std" not in reasons else None,
        mean_flow=float(pair_mean_px.mean()),
        jerk=jerk_of(mean_vectors * pixel_scale) if "jerk" not in reasons else None,
        dynamic_degree=float((pair_top > threshold).mean()),
        flicker=flicker_from(changes),
        reasons=reasons,
    )
