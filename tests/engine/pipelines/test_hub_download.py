"""`python -m engine download MODEL` fetches what the model's pipeline loads and nothing else, through
huggingface_hub's API (faked at that seam: there is no hub here)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError

from engine import cli
from engine.pipelines import hub
from engine.registry import get_model

SVD_XT_REPO = [
    ".gitattributes", "LICENSE", "README.md", "model_index.json",
    "svd_xt.safetensors", "svd_xt_image_decoder.safetensors",  # ~9.5 GB each, not diffusers' layout
    "feature_extractor/preprocessor_config.json",
    "image_encoder/config.json", "image_encoder/model.fp16.safetensors", "image_encoder/model.safetensors",
    "scheduler/scheduler_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
]
SVD_INDEX = {"_class_name": "StableVideoDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
             "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}

LTX_REPO = [
    "model_index.json", "ltx-video-2b-v0.9.safetensors", "ltx-video-2b-v0.9.1.safetensors", "media/ltx.gif",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model-00001-of-00004.safetensors",
    "text_encoder/model-00002-of-00004.safetensors", "text_encoder/model.safetensors.index.json",
    "tokenizer/added_tokens.json", "tokenizer/special_tokens_map.json", "tokenizer/spiece.model",
    "tokenizer/tokenizer_config.json",
    "transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
    "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
    "transformer/diffusion_pytorch_model.safetensors.index.json",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
]
LTX_INDEX = {"_class_name": "LTXPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
             "transformer": ["diffusers", "LTXVideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTXVideo"]}


class FakeHub:
    """The three calls a download makes; records what snapshot_download was asked for."""

    def __init__(self, monkeypatch, tmp_path: Path, repo_files: list[str], model_index: dict) -> None:
        self.snapshot_calls: list[dict] = []
        index_file = tmp_path / "hub" / "model_index.json"
        index_file.parent.mkdir(parents=True, exist_ok=True)
        index_file.write_text(json.dumps(model_index))
        monkeypatch.setattr(hub, "hub_reachable", lambda timeout_s=2.0: True)
        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda _self, repo_id, **kw: list(repo_files))
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **kw: str(index_file))

        def snapshot_download(repo_id, **kwargs):
            self.snapshot_calls.append({"repo_id": repo_id, **kwargs})
            return str(kwargs.get("local_dir") or tmp_path / "hub" / "snapshot")

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)

    @property
    def allow_patterns(self) -> list[str]:
        return self.snapshot_calls[-1]["allow_patterns"]


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_svd_xt_fetches_the_fp16_diffusers_files_and_not_the_root_checkpoints(monkeypatch, tmp_path):
    fake = FakeHub(monkeypatch, tmp_path, SVD_XT_REPO, SVD_INDEX)
    hub.download_model(get_model("svd-xt"))
    assert fake.snapshot_calls[0]["repo_id"] == "stabilityai/stable-video-diffusion-img2vid-xt"
    assert sorted(fake.allow_patterns) == sorted([
        "model_index.json", "feature_extractor/preprocessor_config.json",
        "image_encoder/config.json", "image_encoder/model.fp16.safetensors", "scheduler/scheduler_config.json",
        "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
    ])


def test_a_model_without_a_variant_fetches_its_plain_shards_and_their_index(monkeypatch, tmp_path):
    fake = FakeHub(monkeypatch, tmp_path, LTX_REPO, LTX_INDEX)
    hub.download_model(get_model("ltx-video"))
    patterns = fake.allow_patterns
    assert "transformer/diffusion_pytorch_model-00002-of-00002.safetensors" in patterns
    assert "transformer/diffusion_pytorch_model.safetensors.index.json" in patterns
    assert "text_encoder/model-00001-of-00004.safetensors" in patterns and "tokenizer/spiece.model" in patterns
    assert not any(p.startswith(("ltx-video-2b", "media/")) for p in patterns)


def test_a_component_without_the_variant_gets_its_plain_weights():
    repo = ["model_index.json", "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    assert hub.pipeline_files(repo, ["unet", "vae"], "fp16") == [
        "model_index.json", "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors"]


def test_a_sharded_variant_keeps_its_own_index_only():
    repo = ["t/model.fp16-00001-of-00002.safetensors", "t/model.fp16-00002-of-00002.safetensors",
            "t/model.safetensors.index.fp16.json", "t/model.safetensors.index.json",
            "t/model-00001-of-00002.safetensors", "t/config.json"]
    assert hub.pipeline_files(repo, ["t"], "fp16") == [
        "t/config.json", "t/model.fp16-00001-of-00002.safetensors", "t/model.fp16-00002-of-00002.safetensors",
        "t/model.safetensors.index.fp16.json"]


def test_components_the_pipeline_does_not_load_are_left_out():
    index = {"_class_name": "X", "unet": ["diffusers", "UNet"], "safety_checker": [None, None]}
    assert hub.pipeline_components(index) == ["unet"]


def test_models_dir_puts_the_files_where_the_engine_looks_first(monkeypatch, tmp_path):
    fake = FakeHub(monkeypatch, tmp_path, SVD_XT_REPO, SVD_INDEX)
    done = hub.download_model(get_model("svd-xt"), tmp_path / "models")
    assert fake.snapshot_calls[0]["local_dir"] == tmp_path / "models" / "svd-xt"
    assert done.folder == tmp_path / "models" / "svd-xt" and done.variant == "fp16"


def test_a_gated_repo_says_to_accept_the_terms_and_set_hf_token(monkeypatch, tmp_path):
    FakeHub(monkeypatch, tmp_path, SVD_XT_REPO, SVD_INDEX)
    response = httpx2.Response(401, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))

    def refuse(_self, repo_id, **kw):
        raise GatedRepoError("Access to model is restricted", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
    with pytest.raises(hub.DownloadFailed, match="gated.*HF_TOKEN"):
        hub.download_model(get_model("svd-xt"))


def test_offline_mode_refuses_before_any_request(monkeypatch, tmp_path):
    fake = FakeHub(monkeypatch, tmp_path, SVD_XT_REPO, SVD_INDEX)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DownloadFailed, match="HF_HUB_OFFLINE"):
        hub.download_model(get_model("svd-xt"))
    assert fake.snapshot_calls == []


def test_the_cli_downloads_and_names_the_folder(monkeypatch, tmp_path, capsys):
    FakeHub(monkeypatch, tmp_path, SVD_XT_REPO, SVD_INDEX)
    assert cli.main(["download", "svd-xt", "--models-dir", str(tmp_path / "models")]) == 0
    assert f"svd-xt: 9 files in {tmp_path / 'models' / 'svd-xt'}" in capsys.readouterr().out


def test_the_cli_refuses_a_smoke_test_model(capsys):
    assert cli.main(["download", "tiny"]) == cli.EXIT_BAD_INPUT
    assert "nothing to download" in capsys.readouterr().err


def test_the_printed_shell_command_includes_only_the_variant_weights():
    command = get_model("svd-xt").download_command
    assert command.startswith("hf download stabilityai/stable-video-diffusion-img2vid-xt --include ")
    assert '"*/*.fp16.safetensors"' in command and '"*/*.safetensors"' not in command


def test_the_variant_is_loaded_only_where_the_weights_here_hold_it(tmp_path):
    spec = get_model("svd-xt")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").touch()
    assert hub.load_variant(spec, tmp_path) is None  # a whole-repo download without fp16 files
    (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").touch()
    assert hub.load_variant(spec, tmp_path) == "fp16"
    assert hub.load_variant(spec, None) == "fp16"  # nothing here: from_pretrained fetches the variant
    assert hub.load_variant(get_model("ltx-video"), tmp_path) is None


def test_from_pretrained_is_asked_for_the_variant_the_models_dir_holds(monkeypatch, tmp_path):
    import diffusers
    import torch

    from engine.pipelines.loading import load_pipeline

    (tmp_path / "svd-xt" / "unet").mkdir(parents=True)
    (tmp_path / "svd-xt" / "unet" / "diffusion_pytorch_model.fp16.safetensors").touch()
    calls = []

    class Loaded:
        def to(self, device):
            return self

    def from_pretrained(source, **kwargs):
        calls.append((source, kwargs))
        return Loaded()

    monkeypatch.setattr(diffusers.StableVideoDiffusionPipeline, "from_pretrained", from_pretrained)
    load_pipeline(get_model("svd-xt"), device="cpu", dtype=torch.float16, models_dir=tmp_path)
    assert calls[0][0] == str(tmp_path / "svd-xt") and calls[0][1]["variant"] == "fp16"


def test_missing_weights_name_the_download_command(monkeypatch, tmp_path):
    import torch

    from engine.pipelines.loading import WeightsMissing, load_pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsMissing) as missing:
        load_pipeline(get_model("svd-xt"), device="cpu", dtype=torch.float16, models_dir=tmp_path)
    message = str(missing.value)
    assert "`python -m engine download svd-xt`" in message
    assert '`hf download stabilityai/stable-video-diffusion-img2vid-xt --include "model_index.json"' in message
