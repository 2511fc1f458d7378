"""A precompiled denoiser compiles once per signature, saves it, and a new process loads it instead."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import torch

from engine.speed.precompile import COMPILED, PRECOMPILED, artefact_key, precompiled
from tests.engine.speed.conftest import TINY_DENOISER, denoiser_module


def call(model, sample, t=0.5):
    with torch.inference_mode():
        return model(sample, torch.tensor(t), scale=2.0, return_dict=False)[0]


def test_the_first_call_compiles_and_saves_and_matches_eager(tmp_path, model_module):
    eager = model_module.build()
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    sample = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(call(model, sample), call(eager, sample))
    assert model.forward.last_event["event"] == "compiled"
    assert len(list((tmp_path / "pc").glob("*.bin"))) == 1
    torch.testing.assert_close(call(model, sample, 0.1), call(eager, sample, 0.1))  # new timestep, same code


def run_in_new_process(tmp_path, model_module, *, preload: bool) -> list[str]:
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    sample = torch.randn(1, 4, 8, 8)
    expected = call(model_module.build(), sample)
    call(model, sample)
    torch.save(sample, tmp_path / "sample.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path[:0] = [{str(tmp_path)!r}]
        import tiny_denoiser
        from engine.speed.precompile import precompiled
        model = precompiled(tiny_denoiser.build(), cache_dir=__import__('pathlib').Path({str(tmp_path / 'pc')!r}), parts="test")
        preloaded = model.forward.preload() if {preload!r} else 0
        sample = torch.load({str(tmp_path / 'sample.pt')!r})
        with torch.inference_mode():
            out = model(sample, torch.tensor(0.5), scale=2.0, return_dict=False)[0]
        torch.save(out, {str(tmp_path / 'out.pt')!r})
        print(preloaded, model.forward.last_event.get("event"), model.forward.level)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected)
    return done.stdout.split()


def test_a_new_process_loads_the_saved_code_instead_of_compiling(tmp_path, model_module):
    assert run_in_new_process(tmp_path, model_module, preload=False) == ["0", "loaded", PRECOMPILED]


def test_preloading_loads_the_saved_code_before_the_first_call(tmp_path, model_module):
    assert run_in_new_process(tmp_path, model_module, preload=True) == ["1", "None", PRECOMPILED]


def test_another_shape_gets_its_own_artefact(tmp_path, model_module):
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    call(model, torch.randn(1, 4, 8, 8))
    out = call(model, torch.randn(1, 4, 16, 16))
    assert out.shape == (1, 4, 16, 16)
    assert len(list((tmp_path / "pc").glob("*.bin"))) == 2


def test_an_unreadable_artefact_is_compiled_again(tmp_path, model_module):
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    sample = torch.randn(1, 4, 8, 8)
    key = artefact_key(model_module.build(), (sample, torch.tensor(0.5)), {"scale": 2.0, "return_dict": False},
                       parts="test")
    (tmp_path / "pc").mkdir()
    (tmp_path / "pc" / f"{key}.bin").write_bytes(b"not a compiled model")
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.last_event["event"] == "compiled"


def test_a_failed_precompile_falls_back_to_torch_compile(tmp_path, model_module, monkeypatch):
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")

    def broken(*args, **kwargs):
        raise RuntimeError("this graph cannot be serialised")

    monkeypatch.setattr(model.forward, "_aot_compile", broken)
    sample = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.level == COMPILED


def test_the_key_changes_with_shape_dtype_values_and_parts(model_module):
    module = model_module.build()
    x = torch.randn(1, 4, 8, 8)
    base = artefact_key(module, (x,), {"scale": 2.0}, parts="a")
    assert artefact_key(module, (x,), {"scale": 2.0}, parts="a") == base
    assert artefact_key(module, (torch.randn(1, 4, 8, 9),), {"scale": 2.0}, parts="a") != base
    assert artefact_key(module, (x.half(),), {"scale": 2.0}, parts="a") != base
    assert artefact_key(module, (x,), {"scale": 3.0}, parts="a") != base
    assert artefact_key(module, (x,), {"scale": 2.0}, parts="b") != base


def test_the_denoiser_says_it_is_compiling_while_it_compiles(tmp_path, model_module):
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    seen = []
    real = model.forward._aot_compile

    def watching(args, kwargs):
        seen.append(model.forward.compiling)
        return real(args, kwargs)

    model.forward._aot_compile = watching
    call(model, torch.randn(1, 4, 8, 8))
    assert seen == [True] and model.forward.compiling is False


def test_only_the_most_recent_shapes_of_a_model_are_kept(tmp_path, model_module, monkeypatch):
    import engine.speed.precompile as precompile

    monkeypatch.setattr(precompile, "KEEP_PER_MODEL", 1)
    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    call(model, torch.randn(1, 4, 8, 8))
    call(model, torch.randn(1, 4, 16, 16))
    assert len(list((tmp_path / "pc").glob("*.bin"))) == 1
    assert call(model, torch.randn(1, 4, 16, 16)).shape == (1, 4, 16, 16)


def test_when_torch_compile_fails_too_the_denoiser_runs_eagerly(tmp_path, model_module, monkeypatch):
    from engine.speed.precompile import EAGER

    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")

    def broken(*args, **kwargs):
        raise RuntimeError("inductor cannot build this graph")

    monkeypatch.setattr(model.forward, "_aot_compile", broken)
    model.forward.fallback = broken
    sample = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(call(model, sample), call(model_module.build(), sample))
    assert model.forward.level == EAGER


def test_while_compiling_is_forbidden_a_new_shape_raises_and_a_saved_one_loads(tmp_path, model_module):
    from engine.speed.precompile import NotCompiledYet, compiling_forbidden

    model = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    saved = torch.randn(1, 4, 8, 8)
    call(model, saved)  # compiles and saves this shape
    fresh = precompiled(model_module.build(), cache_dir=tmp_path / "pc", parts="test")
    with compiling_forbidden(fresh):
        call(fresh, saved)
        assert fresh.forward.last_event["event"] == "loaded"
        with pytest.raises(NotCompiledYet, match="for this shape on this machine yet"):
            call(fresh, torch.randn(1, 4, 16, 16))
    assert fresh.forward.may_compile  # allowed again outside


def _compiling_process(tmp_path, sleep_s: float) -> subprocess.Popen:
    """A process that compiles the tiny denoiser for one shape, its compile slowed by `sleep_s`."""
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        sys.path[:0] = [{str(tmp_path)!r}]
        import tiny_denoiser
        from engine.speed.precompile import precompiled
        model = precompiled(tiny_denoiser.build(), cache_dir=__import__('pathlib').Path({str(tmp_path / 'pc')!r}), parts="test")
        compile_now = model.forward._aot_compile
        def slow_compile(args, kwargs):
            print("compiling", flush=True)
            time.sleep({sleep_s})
            return compile_now(args, kwargs)
        model.forward._aot_compile = slow_compile
        with torch.inference_mode():
            model(torch.ones(1, 4, 8, 8), torch.tensor(0.5), scale=2.0, return_dict=False)
        print(model.forward.last_event["event"])
        """
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_needing_the_same_shape_compile_it_once(tmp_path, model_module):
    procs = [_compiling_process(tmp_path, 3) for _ in range(2)]  # long enough that unlocked compiles overlap
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert sorted(out.split()[-1] for out, _ in outs) == ["compiled", "loaded"]
    assert len(list((tmp_path / "pc").glob("*.bin"))) == 1


def test_a_process_killed_while_compiling_lets_the_waiting_one_compile(tmp_path, model_module):
    first = _compiling_process(tmp_path, 600)
    assert first.stdout.readline().strip() == "compiling"  # it holds the lock now
    second = _compiling_process(tmp_path, 0)
    time.sleep(1)
    first.kill()
    first.wait()
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-2000:]
    assert out.split()[-1] == "compiled"


WRAPPED_MODEL = TINY_DENOISER.replace("class Denoiser", "from diffusers.utils.peft_utils import apply_lora_scale\n\nclass Denoiser").replace(
    "    def forward(", "    @apply_lora_scale(\"attention_kwargs\")\n    def forward(")


def test_a_forward_wrapped_in_diffusers_lora_scale_is_saved_and_loaded(tmp_path, monkeypatch):
    # LTX-Video's transformer: its forward is wrapped, and saving it used to fail with a PicklingError
    tiny_denoiser = denoiser_module(tmp_path, monkeypatch, WRAPPED_MODEL)

    assert hasattr(type(tiny_denoiser.build()).forward, "__wrapped__")
    assert run_in_new_process(tmp_path, tiny_denoiser, preload=False) == ["0", "loaded", PRECOMPILED]

