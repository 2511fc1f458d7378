"""The Hugging Face hub: whether it can be reached (if not, go offline at once), and downloading exactly the
files a model's pipeline loads.

Without the reachability check, every `from_pretrained` of a hub id that is not cached retries the network
with back-off for about 30 s before it fails. Checked once per process, through the proxy the environment names
(HTTPS_PROXY, NO_PROXY), as the downloads themselves go.

Downloads go through huggingface_hub's API, so they resume, show a progress bar and honour HF_HOME,
HF_HUB_CACHE, HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE and the proxy variables like every other hub tool.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from engine.registry import ModelSpec

log = logging.getLogger(__name__)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """Whether the hub answers an HTTP request (any status: it is there), through HTTPS_PROXY/NO_PROXY as they
    are now, where a bare socket to port 443 would miss a proxied network. A fresh opener each call: urlopen's
    global one keeps the proxies of the environment it first saw."""
    request = urllib.request.Request(hub_endpoint() + "/api/models?limit=1", method="HEAD")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())
    try:
        with opener.open(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):  # URLError, timeouts, a refused proxy tunnel; ValueError: a malformed endpoint
        return False


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def go_offline_if_hub_unreachable() -> bool:
    """Set HF_HUB_OFFLINE=1 for this process (and its children) when the hub cannot be reached.
    Returns True when offline. An explicit HF_HUB_OFFLINE in the environment is left alone."""
    if "HF_HUB_OFFLINE" in os.environ:
        return offline()
    if hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    log.warning("the Hugging Face hub cannot be reached: offline mode; weights must be cached or in models_dir")
    return True


# -- which files a diffusers pipeline loads -----------------------------------------------------------------------
# diffusers reads model_index.json, then each component's folder: its configs and tokenizer files, and its weights
# in safetensors — the variant's files (`model.fp16.safetensors`, `….fp16-00001-of-00002.safetensors`) in a folder
# that has them, the plain ones elsewhere (diffusers.pipelines.pipeline_loading_utils.variant_compatible_siblings).
_SHARD = r"-\d{5}-of-\d{5}"
_SMALL_FILES = (".json", ".txt", ".model")  # configs, tokenizer vocabularies and merges, sentencepiece models


def _variant_weights(name: str, variant: str) -> bool:
    return re.fullmatch(rf"[^.]+\.{re.escape(variant)}({_SHARD})?\.safetensors", name) is not None


def _plain_weights(name: str) -> bool:
    return re.fullmatch(rf"[^.]+({_SHARD})?\.safetensors", name) is not None


def _index_of(name: str) -> str | None:
    """'plain', the variant name, or None for a file that is not a safetensors index."""
    match = re.fullmatch(r"[^.]+\.safetensors\.index(?:\.([^.]+))?\.json", name)
    if match is None:
        return None
    return match.group(1) or "plain"


def pipeline_files(repo_files: list[str], components: list[str], variant: str | None) -> list[str]:
    """The files of a diffusers repo that `from_pretrained(…, variant=variant)` loads: model_index.json and, in
    each component's folder, the small files and one set of safetensors weights. Other checkpoints in the repo
    (SVD-XT's root holds two more of ~9.5 GB; .bin, .ckpt and other variants) are left out."""
    by_folder: dict[str, list[str]] = {}
    for path in repo_files:
        folder, _, name = path.rpartition("/")
        if folder in components and "/" not in folder:
            by_folder.setdefault(folder, []).append(name)
    chosen = [p for p in ("model_index.json",) if p in repo_files]
    for folder in components:
        names = by_folder.get(folder, [])
        use_variant = variant is not None and any(_variant_weights(n, variant) for n in names)
        for name in sorted(names):
            index = _index_of(name)
            if index is not None:
                keep = index == (variant if use_variant else "plain")
            elif name.endswith(".safetensors"):
                keep = _variant_weights(name, variant) if use_variant else _plain_weights(name)
            else:
                keep = name.endswith(_SMALL_FILES)
            if keep:
                chosen.append(f"{folder}/{name}")
    return chosen


def pipeline_components(model_index: dict) -> list[str]:
    """The component folders model_index.json names (entries like `"unet": ["diffusers", "UNet…"]`; a
    `[null, null]` entry is a component the pipeline does not load)."""
    return sorted(
        key for key, value in model_index.items()
        if not key.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] is not None
    )


# -- downloading ---------------------------------------------------------------------------------------------------
class DownloadFailed(RuntimeError):
    """The weights could not be fetched; the message says why and what to do."""


@dataclass(frozen=True)
class Downloaded:
    model: str
    folder: Path  # where from_pretrained finds them: models_dir/<model> or the snapshot in the HF cache
    files: list[str]
    variant: str | None


def _hub_failure(spec: ModelSpec, exc: Exception) -> DownloadFailed:
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    repo = spec.hub_id
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError) or status in (401, 403):
        return DownloadFailed(
            f"{repo} is gated or needs a login ({status or 'refused'}): accept its terms at {hub_endpoint()}/{repo} "
            "with your account, then set HF_TOKEN to a read token (or run `hf auth login`) and try again")
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadFailed(f"{repo} was not found on {hub_endpoint()} (or is private: set HF_TOKEN)")
    if isinstance(exc, HfHubHTTPError):
        return DownloadFailed(f"the hub refused {repo}: {str(exc).splitlines()[0]}")
    return DownloadFailed(
        f"cannot reach {hub_endpoint()} for {repo} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); behind a "
        "proxy, set HTTPS_PROXY; to work from the cache only, set HF_HUB_OFFLINE=1")


def download_model(spec: ModelSpec, models_dir: Path | None = None) -> Downloaded:
    """Fetch what `spec`'s pipeline loads into `models_dir/<model id>` (where the engine looks first) or, without a
    models_dir, into the Hugging Face cache. Files already there are skipped; a partial file resumes."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    if spec.hub_id is None:
        raise DownloadFailed(f"{spec.id} is a smoke-test model built from random weights: there is nothing to download")
    local_dir = Path(models_dir) / spec.id if models_dir is not None else None
    if offline():
        raise DownloadFailed(f"HF_HUB_OFFLINE is set: nothing can be downloaded; unset it to fetch {spec.hub_id}")
    if not hub_reachable():  # at once, rather than after the client's ~25 s of retries
        raise DownloadFailed(f"cannot reach {hub_endpoint()} to fetch {spec.hub_id}; behind a proxy, set HTTPS_PROXY")
    try:
        repo_files = HfApi().list_repo_files(spec.hub_id)
        index_path = hf_hub_download(spec.hub_id, "model_index.json", local_dir=local_dir)
        components = pipeline_components(json.loads(Path(index_path).read_text(encoding="utf-8")))
        files = pipeline_files(repo_files, components, spec.variant)
        folder = snapshot_download(spec.hub_id, allow_patterns=files, local_dir=local_dir)
    except Exception as exc:  # the HTTP client's own errors (connect, TLS, timeouts) share no base with OSError
        raise _hub_failure(spec, exc) from exc
    return Downloaded(spec.id, Path(folder), files, spec.variant)


def cached_folder(spec: ModelSpec, models_dir: Path | None) -> Path | None:
    """The folder from_pretrained would read `spec` from without the network, if there is one."""
    if models_dir is not None and (Path(models_dir) / spec.id).is_dir():
        return Path(models_dir) / spec.id
    if spec.hub_id is None:
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.hub_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def load_variant(spec: ModelSpec, folder: Path | None) -> str | None:
    """The variant to ask from_pretrained for: the model's, unless the weights already here were fetched without
    it (a whole-repo download) — diffusers refuses a variant that a folder does not hold. With nothing here yet,
    the model's variant (from_pretrained then fetches it)."""
    if spec.variant is None or folder is None:
        return spec.variant
    held = any(_variant_weights(p.name, spec.variant) for p in folder.glob("*/*.safetensors"))
    return spec.variant if held else None


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
