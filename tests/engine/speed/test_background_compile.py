"""A shape with nothing compiled yet: the job runs eagerly while another process compiles it; the next job loads it."""

from __future__ import annotations

import pickle
import time

import pytest
import torch

from engine.speed import background_compile
from engine.speed.background_compile import BackgroundCompiler, meta_copy, read_result
from engine.speed.mode import AppliedSpeed, SpeedParts
from engine.speed.precompile import BACKGROUND, LOADED, precompiled


@pytest.fixture(autouse=True)
def compilers(monkeypatch):
    """Every BackgroundCompiler a test makes, its child stopped at the test's end."""
    made: list[BackgroundCompiler] = []
    real_init = BackgroundCompiler.__init__

    def tracked(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(BackgroundCompiler, "__init__", tracked)
    yield made
    for compiler in made:
        compiler.close()


def background_model(model_module, cache_dir):
    model = precompiled(model_module.build(), cache_dir=cache_dir, parts="test")
    model.forward.background = BackgroundCompiler(cache_dir)
    return model


def call(model, sample):
    with torch.inference_mode():
        return model(sample, torch.tensor(0.5), scale=2.0, return_dict=False)[0]


def wait_for(compiler: BackgroundCompiler, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while compiler.process is not None or compiler.queued:
        assert time.monotonic() < deadline, "the background compile did not finish"
        compiler.poll()
        time.sleep(0.2)


def test_a_new_shape_runs_eagerly_while_another_process_compiles_it(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    sample = torch.randn(1, 4, 8, 8)
    model.forward.begin_job()
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.job_events == {BACKGROUND}
    assert model.forward.last_event == {}  # nothing compiled in this process
    assert model.forward.background.process is not None


def test_the_next_job_at_that_shape_loads_what_the_background_compiled(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    sample = torch.randn(1, 4, 8, 8)
    model.forward.begin_job()
    call(model, sample)
    wait_for(model.forward.background)
    key = next(iter(model.forward.waiting))
    result = read_result(tmp_path / "pc", key)
    assert result.ok and result.seconds > 0 and result.cpu_seconds > 0
    model.forward.begin_job()
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.job_events == {LOADED}
    assert model.forward.last_event["event"] == "loaded"


def test_calls_at_a_shape_still_compiling_run_eagerly_without_asking_again(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    sample = torch.randn(1, 4, 8, 8)
    model.forward.begin_job()
    call(model, sample)
    first = model.forward.background.process
    call(model, sample)
    assert model.forward.background.process is first and not model.forward.background.queued


def test_a_second_new_shape_waits_for_the_first_compile(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    model.forward.begin_job()
    call(model, torch.randn(1, 4, 8, 8))
    call(model, torch.randn(1, 4, 16, 16))
    assert len(model.forward.background.queued) == 1
    wait_for(model.forward.background)
    assert len(list((tmp_path / "pc").glob("*.bin"))) == 2


def test_a_failed_background_compile_leaves_that_shape_eager_and_says_why(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    model.forward.prefix = "Denoiser-not-this-module"  # the child rebuilds a module with another key
    sample = torch.randn(1, 4, 8, 8)
    model.forward.begin_job()
    call(model, sample)
    wait_for(model.forward.background)
    model.forward.begin_job()
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.job_events == {BACKGROUND}
    (note,) = model.forward.job_notes
    assert "background compile failed" in note and "rebuilt a different module" in note
    assert model.forward.background.process is None  # not asked again


def test_a_module_that_cannot_be_handed_over_is_compiled_in_the_job(tmp_path, model_module):
    module = model_module.build()
    module.unpicklable = lambda: None  # a lambda does not pickle
    model = precompiled(module, cache_dir=tmp_path / "pc", parts="test")
    model.forward.background = BackgroundCompiler(tmp_path / "pc")
    model.forward.begin_job()
    sample = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.last_event["event"] == "compiled"
    assert any("could not be compiled in the background" in note for note in model.forward.job_notes)


def test_the_meta_copy_holds_no_weights_and_no_hooks(model_module):
    import threading

    class Clock:  # holds a lock, as the stage clock does: neither deepcopies nor pickles
        lock = threading.Lock()

        def __init__(self):
            self.lock = threading.Lock()

        def hook(self, *args):
            return None

    module = model_module.build()
    module.register_forward_hook(Clock().hook)
    module.conv.register_forward_pre_hook(Clock().hook)
    clone = meta_copy(module)
    assert all(p.device.type == "meta" for p in clone.parameters())
    assert all(p.device.type == "cpu" for p in module.parameters())
    assert not clone._forward_hooks and module._forward_hooks
    pickle.dumps(clone)


def test_a_compile_waits_while_the_gpu_lacks_room_for_the_job_and_the_copy(tmp_path, monkeypatch):
    compiler = BackgroundCompiler(tmp_path)
    compiler.job_peak_bytes = 10 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (12 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 6 * 2**30)
    cuda = torch.device("cuda", 0)
    # The job may claim 4 GiB more; a 6 GiB copy and the child's overhead do not fit in 12 GiB free.
    assert compiler._missing_gpu_bytes(cuda, 6 * 2**30) == (4 + 6 - 12) * 2**30 + background_compile.CHILD_OVERHEAD_BYTES
    assert compiler._missing_gpu_bytes(cuda, 1 * 2**30) < 0


def test_a_job_that_ran_eagerly_is_labelled_eager_with_the_parts_that_need_no_compile(tmp_path, model_module):
    model = background_model(model_module, tmp_path / "pc")
    parts = SpeedParts(compile=True, channels_last=True, short_attention=True, fused_qkv=True, precompile=True,
                       vae_decoder=True, background=True)
    speed = AppliedSpeed(parts, model, None, model.forward.background)
    speed.begin_job()
    call(model, torch.randn(1, 4, 8, 8))
    assert speed.label == "eager+shortattn+qkv"
    assert speed.compile_state() == BACKGROUND
