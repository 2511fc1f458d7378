"""Whether the Hugging Face hub can be reached; if not, go offline at once.

Without this, every `from_pretrained` of a hub id that is not cached retries the network
with back-off for about 30 s before it fails. Checked once per process, with a DNS lookup.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger(__name__)


def hub_reachable(timeout_s: float = 2.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def go_offline_if_hub_unreachable() -> bool:
    """Set HF_HUB_OFFLINE=1 for this process (and its children) when the hub cannot be reached.
    Returns True when offline. An explicit HF_HUB_OFFLINE in the environment is left alone."""
    if "HF_HUB_OFFLINE" in os.environ:
        return os.environ["HF_HUB_OFFLINE"].lower() in ("1", "true", "yes", "on")
    if hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    log.warning("the Hugging Face hub cannot be reached: offline mode; weights must be cached or in models_dir")
    return True


_REACHABLE_CHECKED: tuple[float, bool] | None = None  # (monotonic time, reachable) of the last check
_RECHECK_S = 60.0


def hub_offline() -> bool:
    """Whether weights not on this machine cannot be downloaded now: HF_HUB_OFFLINE where it is set (the app sets
    it for its processes at start when the hub is unreachable), else a check of the hub, redone each minute at
    most (a submission asks; it must not wait on the network every time)."""
    global _REACHABLE_CHECKED
    if "HF_HUB_OFFLINE" in os.environ:
        return os.environ["HF_HUB_OFFLINE"].lower() in ("1", "true", "yes", "on")
    import time

    now = time.monotonic()
    if _REACHABLE_CHECKED is None or now - _REACHABLE_CHECKED[0] > _RECHECK_S:
        _REACHABLE_CHECKED = (now, hub_reachable(timeout_s=1.5))
    return not _REACHABLE_CHECKED[1]
