"""Generate offers HunyuanVideo 1.5 I2V and LTX-2 I2V like the Wan family: presets, the frame rule, memory modes."""

from __future__ import annotations

import pytest

from tests.app.conftest import no_exception


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
