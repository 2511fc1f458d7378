"""Generate: upload checks, prediction panel, submit, pre-flight refusal, progress with cancel, the result, the queue."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.app.conftest import no_exception, texts


def _png(size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _ready(at, image: bytes = None, prompt: str = "a cat turns its head"):
    at.run()
    at.file_uploader(key="gen_image").set_value(("cat.png", image or _png(), "image/png"))
    at.run()
    at.text_area(key="gen_prompt").input(prompt)
    at.run()
    return at


def test_empty_store_renders_with_model_defaults(page):
    at = page("generate")
    at.run()
    no_exception(at)
    assert at.session_state["gen_model"] == "tiny"  # no GPU here: the CPU model
    assert at.number_input(key="gen_steps").value == 4
    assert at.button(key="gen_submit").disabled  # no image yet
    assert "The queue is empty" in texts(at)


@pytest.mark.parametrize("payload, message", [
    (b"not an image at all", "not an image PIL can read"),
    (b"", "is empty"),
    (_png((16, 16)), "at least 32 pixels"),
])
def test_bad_upload_is_refused_with_a_message(page, payload, message):
    at = page("generate")
    at.run()
    at.file_uploader(key="gen_image").set_value(("bad.png", payload, "image/png"))
    at.run()
    no_exception(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="gen_submit").disabled


def test_model_change_resets_defaults_and_hides_prompt(page):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("svd")
    at.run()
    no_exception(at)
    assert at.number_input(key="gen_frames").value == 14
    assert at.selectbox(key="gen_resolution").value == "576×1024"
    assert not [t for t in at.text_area if t.key == "gen_prompt"]
    assert "takes no prompt" in texts(at)


def _svd_captions_in_speed_mode(page, monkeypatch) -> list[str]:
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "compile")
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("svd")
    at.run()
    no_exception(at)
    return [c.value for c in at.caption]


def test_a_full_size_model_s_prediction_says_its_first_job_here_compiles_in_the_background(page, monkeypatch):
    captions = _svd_captions_in_speed_mode(page, monkeypatch)
    assert any("First job at this resolution here" in c and "in the background" in c for c in captions), captions


def test_compiling_inline_the_prediction_says_the_first_job_here_compiles(page, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_COMPILE", "inline")
    captions = _svd_captions_in_speed_mode(page, monkeypatch)
    assert any("First job at this resolution here" in c and "compiling" in c for c in captions), captions


def test_guidance_of_one_or_less_is_predicted_and_explained_as_a_single_pass(page):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("svd")
    at.run()
    guided_time = next(m.value for m in at.metric if m.label == "Predicted time")
    assert not any("no classifier-free guidance" in c.value for c in at.caption)
    at.number_input(key="gen_guidance").set_value(1.0)
    at.run()
    no_exception(at)
    assert any("no classifier-free guidance" in c.value for c in at.caption), [c.value for c in at.caption]
    assert next(m.value for m in at.metric if m.label == "Predicted time") != guided_time


def test_custom_resolution_and_validation_message(page):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_resolution").set_value("custom")
    at.run()
    assert not at.number_input(key="gen_height").disabled
    at.number_input(key="gen_height").set_value(80)  # not a multiple of 32
    at.run()
    no_exception(at)
    assert any("not a multiple of 32" in e.value for e in at.error)
    assert at.number_input(key="gen_height").value == 80  # shown as typed, not replaced


def test_apply_recommendation_sets_the_widgets(page):
    at = page("generate")
    at.run()
    at.number_input(key="gen_steps").set_value(9)
    at.run()
    assert "Recommended" in "\n".join(i.value for i in at.info)
    at.button(key="gen_apply_rec").click()
    at.run()
    no_exception(at)
    assert at.number_input(key="gen_steps").value == 4


def test_submit_queues_the_job_and_shows_progress_then_cancel(page, queue):
    at = _ready(page("generate"))
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    job_id = at.session_state["gen_job_id"]
    job = queue.get(job_id)
    assert job.state == "queued" and job.params.prompt == "a cat turns its head" and job.params.model == "tiny"
    assert any("waiting for an engine worker" in p.proto.text for p in at.get("progress"))
    at.button(key=f"cancel_{job_id}").click()
    at.run()
    no_exception(at)
    assert queue.get(job_id).state == "cancelled"
    assert "cancelled" in texts(at)


def test_a_blank_prompt_keeps_generate_disabled_with_the_reason(page):
    at = _ready(page("generate"), prompt="   ")
    no_exception(at)
    button = at.button(key="gen_submit")
    assert button.disabled and "needs a prompt" in button.help
    assert "needs a prompt" in texts(at)


def test_preflight_refusal_offers_suggestions_and_force(page, monkeypatch):
    import engine.intake.submission as submission

    calls = []
    real_submit = submission.submit

    def refusing(settings, queue, raw, image, *, force=False, **kw):
        calls.append((dict(raw), force))
        if not force:
            raise submission.PreflightRefused(
                "does not fit: tiny 64×64×8 needs 9.00 GiB, but 4.00 GiB is free.",
                [{"change": "frames 8 → 4", "params": {**raw, "frames": 4}, "required_free_gib": 3.5, "seconds": 2.0}],
                {"peak_reserved_gib": 8.0, "cuda_context_gib": 0.5, "seconds": 3.0},
            )
        return real_submit(settings, queue, raw, image, force=force, **kw)

    monkeypatch.setattr(submission, "submit", refusing)
    at = _ready(page("generate"))
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    assert any("does not fit" in e.value for e in at.error)
    assert "frames 8 → 4" in texts(at)
    # "Submit anyway" sends force=True
    at.checkbox(key="gen_force").check()
    at.run()
    at.button(key="gen_submit").click()
    at.run()
    assert calls[-1][1] is True and "gen_job_id" in at.session_state
    # an Apply of a suggestion sets the widgets
    at.session_state["gen_refused"] = {"message": "does not fit", "prediction": {},
                                       "suggestions": [{"change": "frames 8 → 4", "params": {"frames": 4}}]}
    at.run()
    at.button(key="gen_apply_suggestion_0").click()
    at.run()
    assert at.number_input(key="gen_frames").value == 4
    assert not at.session_state["gen_refused"]


def test_finished_job_shows_video_timings_and_quality(page, queue, png_file, video_file):
    from engine.queue import JobParams, Progress

    job = queue.submit(JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=8, steps=4), str(png_file),
                       job_id="ab" * 16, predicted={"seconds": 3.0, "peak_allocated_bytes": None})
    queue.claim("w1", None, 10)
    queue.heartbeat(job.id, "w1", 10, Progress(stage="denoising_loop", step=2, total_steps=4, eta_s=1.5, elapsed_s=2.0))
    at = page("generate")
    at.session_state["gen_job_id"] = job.id
    at.run()
    no_exception(at)
    assert any("step 2/4 · denoising_loop" in p.proto.text for p in at.get("progress"))
    quality = {"clip_score": 24.0, "motion": {"smoothness_std": 0.5}, "quality_score": 0.41, "low_quality": True,
               "reasons": {"clip_score": "below 25"}}
    queue.finish(job.id, "w1", "succeeded", result={
        "stages": {"model_load": 1.0, "denoising_loop": 2.0, "export_video": 0.2}, "video_path": str(video_file),
        "smoke_test": True, "quality": quality, "total_s": 3.2, "peak_allocated_bytes": None, "failed_stage": None})
    at.run()
    no_exception(at)
    shown = texts(at)
    assert "finished in 3.2 s" in shown
    assert "smoke-test model (random weights)" in shown
    assert "Low quality: clip_score: below 25" in shown
    assert at.get("video")
    assert at.get("plotly_chart")


def test_failed_job_shows_its_error(page, queue, png_file):
    from engine.queue import JobParams

    job = queue.submit(JobParams(model="tiny", prompt="x", height=64, width=64, frames=8, steps=4), str(png_file),
                       job_id="cd" * 16)
    queue.claim("w1", None, 10)
    queue.finish(job.id, "w1", "failed", error_kind="oom", error_message="CUDA out of memory in decode_video",
                 result={"stages": {"model_load": 1.0}, "failed_stage": "decode_video"})
    at = page("generate")
    at.session_state["gen_job_id"] = job.id
    at.run()
    no_exception(at)
    assert any("failed in decode_video: oom — CUDA out of memory" in e.value for e in at.error)


def test_queue_reorder_and_cancel(page, queue, png_file):
    from engine.queue import JobParams

    ids = []
    for i in range(3):
        ids.append(queue.submit(JobParams(model="tiny", prompt=f"p{i}", height=64, width=64, frames=8, steps=4),
                                str(png_file), job_id=f"{i:02d}" * 16).id)
    at = page("generate")
    at.run()

    def act(job_id: str, action: str) -> None:
        at.selectbox(key="q_pick").set_value(job_id)
        at.run()
        at.button(key=f"q_{action}").click()
        at.run()
        no_exception(at)

    act(ids[2], "top")
    assert [j.id for j in queue.list(states=("queued",))] == [ids[2], ids[0], ids[1]]
    act(ids[1], "up")
    assert [j.id for j in queue.list(states=("queued",))] == [ids[2], ids[1], ids[0]]
    act(ids[2], "bottom")
    assert [j.id for j in queue.list(states=("queued",))] == [ids[1], ids[0], ids[2]]
    act(ids[0], "cancel")
    assert queue.get(ids[0]).state == "cancelled"
    act(ids[1], "follow")
    assert at.session_state["gen_job_id"] == ids[1]


def test_the_first_waiting_job_cannot_move_up_and_the_last_cannot_move_down(page, queue, png_file):
    from engine.queue import JobParams

    ids = [queue.submit(JobParams(model="tiny", prompt=f"p{i}", height=64, width=64, frames=8, steps=4),
                        str(png_file), job_id=f"{i:02d}" * 16).id for i in range(2)]
    at = page("generate")
    at.run()
    at.selectbox(key="q_pick").set_value(ids[0])
    at.run()
    assert at.button(key="q_top").disabled and at.button(key="q_up").disabled
    assert not at.button(key="q_bottom").disabled
    at.selectbox(key="q_pick").set_value(ids[1])
    at.run()
    assert at.button(key="q_bottom").disabled and not at.button(key="q_up").disabled


def test_a_long_queue_lists_the_first_ten_waiting_and_offers_more(page, queue, png_file):
    from engine.queue import JobParams

    for i in range(25):
        queue.submit(JobParams(model="tiny", prompt=f"p{i}", height=64, width=64, frames=8, steps=4), str(png_file),
                     job_id=f"{i:032x}")
    at = page("generate")
    at.run()
    no_exception(at)
    assert "25 waiting; the first 10 are shown." in texts(at)
    assert len(at.dataframe[-1].value) == 10
    at.selectbox(key="q_shown").set_value(50)
    at.run()
    no_exception(at)
    assert "25 waiting; the first 25 are shown." in texts(at)
    assert len(at.dataframe[-1].value) == 25


def test_a_waiting_job_too_large_for_every_serving_gpu_says_so_in_the_queue(page, queue, paths, settings, png_file):
    from datetime import datetime, timezone

    from data import live
    from data.schemas import GpuSample, HostSample
    from engine.queue import JobParams

    now = datetime.now(timezone.utc)
    host = settings.hostname
    live.write_snapshot(paths, live.LiveSnapshot(HostSample(ts=now, host=host), [GpuSample(
        ts=now, host=host, gpu_index=0, gpu_uuid="GPU-0", gpu_name="NVIDIA GeForce RTX 4090",
        memory_free_bytes=20 * 2**30, memory_total_bytes=24 * 2**30)], []))
    live.write_worker(paths, live.WorkerPresence(host, 0, 4242, f"{host}:4242:cuda:0"))
    queue.submit(JobParams(model="tiny", prompt="p", height=64, width=64, frames=8, steps=4), str(png_file),
                 job_id="ab" * 16, predicted={"peak_reserved_bytes": 40 * 2**30})
    at = page("generate")
    at.run()
    no_exception(at)
    status = at.dataframe[0].value["status"].tolist()
    assert any("waiting for a GPU that holds 40.0 GiB" in s and "up to 23.0 GiB" in s for s in status), status


WAN_MODELS = ("wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "tiny-wan",
              "tiny-wan-moe")


def _machine(paths, settings, *, gpu_free_gib: float, host_free_gib: float, gpu_name: str = "NVIDIA H200") -> None:
    """A collector's fresh sample of this host: one GPU with `gpu_free_gib` free, `host_free_gib` of RAM free."""
    from datetime import datetime, timezone

    from data import live
    from data.schemas import GpuSample, HostSample

    now, gib, host = datetime.now(timezone.utc), 2**30, settings.hostname
    live.write_snapshot(paths, live.LiveSnapshot(
        HostSample(ts=now, host=host, ram_total_bytes=256 * gib, ram_used_bytes=int((256 - host_free_gib) * gib)),
        [GpuSample(ts=now, host=host, gpu_index=0, gpu_uuid="GPU-0", gpu_name=gpu_name,
                   memory_free_bytes=int(gpu_free_gib * gib), memory_total_bytes=141 * gib)], []))


def test_wan_models_are_offered_with_presets_frame_rule_and_memory_modes(page):
    at = page("generate")
    at.run()
    offered = {o.removesuffix(" (smoke test)") for o in at.selectbox(key="gen_model").options}
    assert set(WAN_MODELS) <= offered
    at.selectbox(key="gen_model").set_value("wan2.2-i2v-a14b")
    at.run()
    no_exception(at)
    assert at.selectbox(key="gen_resolution").value == "480×832"
    assert {"720×1280", "custom"} <= set(at.selectbox(key="gen_resolution").options)
    frames = at.number_input(key="gen_frames")
    assert frames.value == 81 and "4k+1" in frames.label and frames.step == 4
    assert at.radio(key="gen_offload").options == ["none", "model", "group", "sequential"]
    assert at.radio(key="gen_weights").options == ["bf16", "fp8"]
    at.selectbox(key="gen_model").set_value("svd")  # a model without a choice of weight storage
    at.run()
    no_exception(at)
    assert at.radio(key="gen_offload").options == ["none", "model", "sequential"]
    assert not [r for r in at.radio if r.key == "gen_weights"]
    assert "keeps its weights in its compute dtype" in texts(at)


def test_a_submitted_tiny_wan_moe_job_carries_its_offload_and_weights(page, queue):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("tiny-wan-moe")
    at.run()
    at.radio(key="gen_offload").set_value("group")
    at.radio(key="gen_weights").set_value("fp8")
    at.file_uploader(key="gen_image").set_value(("cat.png", _png(), "image/png"))
    at.text_area(key="gen_prompt").input("a cat turns its head")
    at.run()
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    job = queue.get(at.session_state["gen_job_id"])
    assert (job.params.model, job.params.frames) == ("tiny-wan-moe", 9)
    assert (job.params.offload, job.params.weights) == ("group", "fp8")
    assert "group offload · fp8 weights" in texts(at)  # the job's line says its memory mode


def test_the_prediction_shows_host_ram_and_whether_it_fits_this_machine(page, paths, settings):
    _machine(paths, settings, gpu_free_gib=100, host_free_gib=120)
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("wan2.2-i2v-a14b")
    at.run()
    at.radio(key="gen_offload").set_value("model")
    at.run()
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predicted GPU memory"].endswith("GiB") and metrics["Predicted host RAM"].endswith("GiB")
    assert "min" in metrics["Predicted time"]  # a long job: in minutes
    bars = [p.proto.text for p in at.get("progress")]
    assert any(b.startswith("GPU NVIDIA H200: fits") for b in bars), bars
    assert any(b.startswith("host RAM: fits") and "of 120.0 GiB free" in b for b in bars), bars
    assert "offload keeps" in texts(at) and "in host RAM" in texts(at)


def test_a_refusal_s_model_switch_suggestion_applied_switches_the_model(page, paths, settings):
    _machine(paths, settings, gpu_free_gib=30, host_free_gib=120)  # too small for the 14B experts unoffloaded
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value("wan2.2-i2v-a14b")
    at.run()
    at.file_uploader(key="gen_image").set_value(("cat.png", _png(), "image/png"))
    at.text_area(key="gen_prompt").input("a cat turns its head")
    at.run()
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    refused = at.session_state["gen_refused"]
    assert refused and "does not fit" in refused["message"]
    i, switch = next((i, s) for i, s in enumerate(refused["suggestions"]) if s.get("model"))
    assert switch["model"] == "wan2.2-ti2v-5b" and "about" in texts(at)
    button = at.button(key=f"gen_apply_suggestion_{i}")
    assert button.label == "Switch to wan2.2-ti2v-5b"
    button.click()
    at.run()
    no_exception(at)
    assert at.session_state["gen_model"] == "wan2.2-ti2v-5b"
    params = switch["params"]
    assert (at.number_input(key="gen_height").value, at.number_input(key="gen_width").value,
            at.number_input(key="gen_frames").value) == (params["height"], params["width"], params["frames"])
    assert at.radio(key="gen_offload").value == params["offload"]
    assert at.radio(key="gen_weights").value == (params["weights"] or "bf16")
    assert not at.session_state["gen_refused"]


def test_a_finished_moe_job_shows_each_step_s_expert_the_switch_and_its_host_ram_peak(page, queue, png_file):
    from engine.queue import JobParams

    job = queue.submit(JobParams(model="tiny-wan-moe", prompt="a", height=32, width=32, frames=9, steps=4),
                       str(png_file), job_id="ef" * 16, predicted={"host_peak_bytes": 2 * 2**30})
    queue.claim("w1", None, 10)
    queue.finish(job.id, "w1", "succeeded", result={
        "stages": {"model_load": 1.0, "denoising_loop": 2.0}, "total_s": 3.0, "smoke_test": True,
        "step_times_s": [0.5, 0.5, 0.6, 0.4], "step_experts": ["transformer", "transformer", "transformer_2",
                                                               "transformer_2"],
        "peak_host_rss_bytes": 3 * 2**30})
    at = page("generate")
    at.session_state["gen_job_id"] = job.id
    at.run()
    no_exception(at)
    assert ("Experts: steps 1–2: high-noise expert (transformer); steps 3–4: low-noise expert (transformer_2) — "
            "switched to the low-noise expert (transformer_2) after step 2.") in texts(at)
    steps = next(c for c in at.get("plotly_chart") if "Denoising steps" in c.proto.spec)
    assert "low-noise expert (transformer_2)" in steps.proto.spec
    peaks = next(d.value for d in at.dataframe if "figure" in d.value.columns)
    host = peaks[peaks["figure"] == "peak host RAM"].iloc[0]
    assert (host["measured"], host["predicted"]) == ("3.00 GiB", "2.00 GiB")
