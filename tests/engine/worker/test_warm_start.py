"""Warm start: a starting worker loads its GPU's last model and runs it briefly before its first claim."""

from __future__ import annotations

from engine.intake.submission import submit
from engine.queue import JobParams, open_queue
from engine.worker import warm_start
from engine.worker.runner import PipelineCache
from engine.worker.worker import Worker


def _finish(queue, png_file, gpu_index: int, **params) -> str:
    job = queue.submit(JobParams(model="tiny", prompt="a", **params), str(png_file), job_id=f"{gpu_index}{params}".encode().hex()[:32])
    claimed = queue.claim(f"w{gpu_index}", gpu_index, 10)
    queue.finish(claimed.id, f"w{gpu_index}", "succeeded")
    return job.id


def test_last_setting_is_this_gpus_newest_succeeded_job(settings, png_file):
    queue = open_queue(settings)
    _finish(queue, png_file, 0, height=64, width=64, frames=8, steps=4)
    _finish(queue, png_file, 1, height=96, width=64, frames=8, steps=4)
    _finish(queue, png_file, 0, height=128, width=64, frames=8, steps=4)
    assert warm_start.last_setting(queue, 0).height == 128
    assert warm_start.last_setting(queue, 1).height == 96


def test_last_setting_falls_back_to_any_gpu_then_to_none(settings, png_file):
    queue = open_queue(settings)
    assert warm_start.last_setting(queue, 0) is None
    _finish(queue, png_file, 1, height=96, width=64, frames=8, steps=4)
    assert warm_start.last_setting(queue, 0).height == 96


def test_auto_warms_gpu_workers_only():
    assert warm_start.wanted("auto", "cuda:1") and not warm_start.wanted("auto", "cpu")
    assert warm_start.wanted("on", "cpu") and not warm_start.wanted("off", "cuda:0")


def test_warm_up_loads_the_model_and_runs_two_denoising_steps_at_the_settings_size(settings):
    cache = PipelineCache(settings, "cpu", None)
    shapes = []
    done = warm_start.warm_up(cache, JobParams(model="tiny", height=96, width=64, frames=8, steps=30))
    assert cache.key == ("tiny", "none", None, ()) and cache.loads == 1  # no weight-changing trade (fp8)
    hook = cache.pipe.unet.register_forward_pre_hook(lambda m, a: shapes.append(tuple(a[0].shape)))
    warm_start.warm_up(cache, JobParams(model="tiny", height=96, width=64, frames=8, steps=30))
    hook.remove()
    assert cache.loads == 1  # the second warm-up found the model loaded
    assert len(shapes) == warm_start.WARM_UP_STEPS
    assert shapes[0][-2:] == (96 // 8, 64 // 8)  # latents of the setting's size
    assert done.load_s > 0 and done.run_s > 0


def test_a_starting_worker_has_the_last_model_loaded_before_its_first_job(settings, png_bytes):
    settings.engine.warm_start = "on"
    settings.quality.enabled = False
    queue = open_queue(settings)
    first = Worker(settings, None, queue)
    job = submit(settings, queue, {"model": "tiny", "prompt": "a cat", "steps": 3}, png_bytes, free_bytes=None).job
    assert first.process(queue.claim(first.worker_id, None, 10)).state == "succeeded"

    restarted = Worker(settings, None, queue)
    restarted.warm_start()
    assert restarted.cache.key == ("tiny", job.params.offload, job.params.weights, ()) and restarted.cache.loads == 1
    second = submit(settings, queue, {"model": "tiny", "prompt": "a dog", "steps": 3}, png_bytes, free_bytes=None).job
    assert restarted.process(queue.claim(restarted.worker_id, None, 10)).state == "succeeded"
    assert restarted.cache.loads == 1 and queue.get(second.id).state == "succeeded"


def test_a_failing_warm_up_leaves_the_worker_taking_jobs(settings, png_bytes, monkeypatch):
    settings.engine.warm_start = "on"
    queue = open_queue(settings)
    worker = Worker(settings, None, queue)
    submit(settings, queue, {"model": "tiny", "prompt": "a cat", "steps": 2}, png_bytes, free_bytes=None)
    settings.quality.enabled = False
    worker.process(queue.claim(worker.worker_id, None, 10))

    def broken(cache, params):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(warm_start, "warm_up", broken)
    restarted = Worker(settings, None, queue)
    restarted.warm_start()
    assert restarted.cache.pipe is None



def test_a_warm_up_that_would_compile_keeps_the_model_loaded_and_skips_the_steps(settings, monkeypatch):
    from engine.speed.precompile import NotCompiledYet

    def would_compile(pipe, family, params, device):
        raise NotCompiledYet("no precompiled UNet for this shape on this machine yet")

    monkeypatch.setattr(warm_start, "run_briefly", would_compile)
    cache = PipelineCache(settings, "cpu", None)
    done = warm_start.warm_up(cache, JobParams(model="tiny", height=64, width=64, frames=8, steps=4))
    assert done.skipped and "this shape" in done.skipped
    assert cache.key == ("tiny", "none", None, ())


def test_a_warm_up_may_compile_neither_the_denoiser_nor_the_vae_decoder(settings, monkeypatch, tmp_path):
    from engine.speed.precompile import precompiled

    params = JobParams(model="tiny", height=64, width=64, frames=8, steps=4)
    cache = PipelineCache(settings, "cpu", None)
    warm_start.warm_up(cache, params)
    pipe = cache.pipe
    pipe.unet = precompiled(pipe.unet, cache_dir=tmp_path / "pc", parts="test")
    pipe.vae.decoder = precompiled(pipe.vae.decoder, cache_dir=tmp_path / "pc", parts="test")
    seen = {}

    def record(pipe, family, params, device):
        seen.update(denoiser=pipe.unet.forward.may_compile, decoder=pipe.vae.decoder.forward.may_compile)

    monkeypatch.setattr(warm_start, "run_briefly", record)
    warm_start.warm_up(cache, params)
    assert seen == {"denoiser": False, "decoder": False}
    assert pipe.unet.forward.may_compile and pipe.vae.decoder.forward.may_compile


def test_warm_up_loads_the_last_jobs_weight_trade_so_its_next_job_does_not_reload(settings):
    cache = PipelineCache(settings, "cpu", None)
    warm_start.warm_up(cache, JobParams(model="tiny-wan", height=32, width=32, frames=5, steps=4,
                                        speed_trades=("fp8", "cache")))
    assert cache.key == ("tiny-wan", "none", None, ("fp8",))  # fp8 changes the weights; cache is per call
