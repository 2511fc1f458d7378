"""engine.quality's modules import one another by full name, never through the package (its __init__), which
re-exports score_video from scoring: so no import cycle runs through the package."""

from __future__ import annotations

import ast
from pathlib import Path

import engine.quality

PACKAGE_DIR = Path(engine.quality.__file__).parent


def test_no_quality_module_imports_from_the_quality_package_itself():
    offenders = []
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module == "engine.quality" or node.level == 1 and not node.module):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders


def test_score_video_is_still_importable_from_the_package():
    from engine.quality import score_video
    from engine.quality.scoring import score_video as defined

    assert score_video is defined
