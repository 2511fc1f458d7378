"""The `score` subcommand: `python -m engine score VIDEO --prompt TEXT [--image INPUT] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.quality.clip import SETTING_ENV

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    """Add the `score` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "score",
        help="score a video's quality (CLIP, motion, flicker)",
        description="Score a finished video: CLIP prompt and image alignment, motion, flicker, combined score.",
    )
    parser.add_argument("video", metavar="VIDEO", type=Path, help="the video file (MP4 or anything FFmpeg reads)")
    parser.add_argument("--prompt", metavar="TEXT", default=None, help="the prompt the video was made from")
    parser.add_argument("--image", metavar="INPUT", type=Path, default=None, help="the input image of the video")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--clip-model",
        default=None,
        help=f"CLIP hub id or local folder (default: the quality.clip_model setting, ${SETTING_ENV})",
    )
    parser.add_argument("--device", default="cpu", help="torch device for CLIP, e.g. cpu or cuda (default: cpu)")
    parser.set_defaults(func=handle_score)


def handle_score(args: argparse.Namespace) -> int:
    """Score `args.video`; print JSON or a table; 0 on success, 2 for a bad video or image."""
    from config.settings import load_settings
    from engine.quality.scoring import score_video
    from engine.quality.video import VideoUnreadable

    if args.image is not None and not args.image.is_file():
        print(f"error: input image {args.image} does not exist", file=sys.stderr)
        return EXIT_BAD_INPUT
    quality = load_settings().quality
    try:
        report = score_video(
            args.video,
            args.prompt,
            args.image,
            clip_model=args.clip_model or quality.clip_model,
            device=args.device,
            low_quality_threshold=quality.low_quality_threshold,
        )
    except VideoUnreadable as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_table(report.flat(), report.reasons))
    return EXIT_OK


def format_table(flat: dict, reasons: dict[str, str]) -> str:
    """A readable two-column table of the flat metrics; a null shows N/A and a note number for its reason."""
    rows, notes = [], []
    for key, value in flat.items():
        if key == "quality_reasons":
            continue
        if value is None:
            shown = "N/A"
            if key in reasons:
                if reasons[key] not in notes:
                    notes.append(reasons[key])
                shown += f" [{notes.index(reasons[key]) + 1}]"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, int):
            shown = str(value)  # a count: clip_frames_scored
        else:
            shown = f"{value:.4f}"
        rows.append(f"{key:<22} {shown}")
    rows.extend(f"[{number}] {note}" for number, note in enumerate(notes, start=1))
    return "\n".join(rows)
