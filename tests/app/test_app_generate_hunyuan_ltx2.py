"""Generate offers HunyuanVideo 1.5 I2V and LTX-2 I2V like the Wan family: presets, the frame rule, memory modes."""

from __future__ import annotations

import pytest

from tests.app.conftest import no_exception, texts


@pytest.mark.parametrize("model, resolution, presets, frames, step", [
    ("hunyuanvideo-1.5-i2v-480p", "480×848", {"848×480", "640×640"}, 121, 4),
    ("hunyuanvideo-1.5-i2v-720p", "720×1280", {"1280×720", "960×960"}, 121, 4),
    ("ltx-2-i2v", "512×768", {"768×512", "704×1216"}, 121, 8),
])
def test_the_new_models_are_offered_with_presets_frame_rule_and_memory_modes(page, model, resolution, presets, frames,
                                                                              step):
    at = page("generate")
    at.run()
    offered = {o.removesuffix(" (smoke test)") for o in at.selectbox(key="gen_model").options}
    assert {"hunyuanvideo-1.5-i2v-480p", "hunyuanvideo-1.5-i2v-720p", "ltx-2-i2v", "tiny-hunyuan15", "tiny-ltx2"} <= offered
    at.selectbox(key="gen_model").set_value(model)
    at.run()
    no_exception(at)
    assert at.selectbox(key="gen_resolution").value == resolution
    assert presets | {"custom"} <= set(at.selectbox(key="gen_resolution").options)
    assert at.number_input(key="gen_frames").value == frames and at.number_input(key="gen_frames").step == step
    assert at.radio(key="gen_offload").options == ["none", "model", "group", "sequential"]
    assert at.radio(key="gen_weights").options == ["bf16", "fp8"]


def test_a_finished_ltx2_job_plays_its_video_and_says_its_soundtrack_is_not_scored(page, queue, png_file, video_file):
    from engine.queue import JobParams

    job = queue.submit(JobParams(model="tiny-ltx2", prompt="waves", height=64, width=64, frames=9, steps=2),
                       str(png_file), job_id="cd" * 16, predicted={"seconds": 3.0, "peak_allocated_bytes": None})
    queue.claim("w1", None, 10)
    queue.finish(job.id, "w1", "succeeded", result={
        "stages": {"model_load": 1.0, "denoising_loop": 2.0, "export_video": 0.2}, "video_path": str(video_file),
        "smoke_test": True, "total_s": 3.2, "failed_stage": None, "has_audio": True, "audio_duration_s": 1.125,
        "audio_scored": False})
    at = page("generate")
    at.session_state["gen_job_id"] = job.id
    at.run()
    no_exception(at)

    assert at.get("video")
    assert "🔊 soundtrack 1.12 s (AAC) — not scored: the quality scores are the video's" in texts(at)


def test_a_model_with_a_soundtrack_offers_video_only_and_its_audio_guidance_and_the_job_carries_them(page, queue):
    from engine.registry import get_model
    from tests.app.test_app_generate import _png

    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("tiny-ltx2")
    at.run()
    no_exception(at)
    assert at.number_input(key="gen_audio_guidance").value == get_model("tiny-ltx2").audio_guidance
    at.checkbox(key="gen_video_only").check()
    at.number_input(key="gen_audio_guidance").set_value(4.5)
    at.file_uploader(key="gen_image").set_value(("waves.png", _png(), "image/png"))
    at.text_area(key="gen_prompt").input("waves roll in")
    at.run()
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    job = queue.get(at.session_state["gen_job_id"])
    assert (job.params.model, job.params.video_only, job.params.audio_guidance) == ("tiny-ltx2", True, 4.5)


def test_an_audio_guidance_out_of_range_is_named_beside_its_field_and_generate_waits(page):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("tiny-ltx2")
    at.run()
    at.number_input(key="gen_audio_guidance").set_value(500.0)
    at.run()
    no_exception(at)
    assert any("audio_guidance must be between 0 and" in e.value for e in at.error)


def test_a_silent_model_has_no_soundtrack_controls(page):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("tiny-wan")
    at.run()
    assert not [c for c in at.checkbox if c.key == "gen_video_only"]

