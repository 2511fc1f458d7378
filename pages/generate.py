"""Generate: an image and settings in; beside them the predicted memory and time and the recommendation;
submit, follow the job, watch the video; the queue below."""

from pathlib import Path

import streamlit as st

from app.views import formatting as fmt, job_panel, queue_table, resources
from app.views.frame import guarded
from engine.intake.validation import InputError, check_image_bytes, check_params
from engine.queue.models import OFFLOAD_MODES
from engine.registry import MODELS, ModelSpec

CUSTOM = "custom"
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
# Widgets whose values must survive while they are hidden (Streamlit forgets an unrendered widget's state).
PARAM_KEYS = ("gen_model", "gen_prompt", "gen_negative", "gen_resolution", "gen_height", "gen_width", "gen_frames",
              "gen_steps", "gen_guidance", "gen_seed", "gen_fps", "gen_chunk", "gen_offload")
FREE_MEMORY_TTL_S = 2
FREE_MEMORY_STEP = 64 * 2**20  # round readings so predictions are cached across small changes


def _label(height: int, width: int) -> str:
    return f"{height}×{width}"


def _resolution_choice(spec: ModelSpec, height: int, width: int) -> str:
    return _label(height, width) if (height, width) in spec.presets else CUSTOM


def _set_defaults() -> None:
    ss = st.session_state
    spec = MODELS[ss.gen_model]
    d = spec.defaults
    ss.gen_height, ss.gen_width = d.height, d.width
    ss.gen_resolution = _resolution_choice(spec, d.height, d.width)
    ss.gen_frames, ss.gen_steps, ss.gen_guidance = d.frames, d.steps, float(d.guidance)
    ss.gen_fps, ss.gen_chunk, ss.gen_offload = d.fps, d.decode_chunk_size or 0, "none"
    ss.gen_refused = None


def _apply(params: dict) -> None:
    """Set the widgets to `params` (a recommendation or a pre-flight suggestion); the rerun shows them."""
    ss = st.session_state
    spec = MODELS[ss.gen_model]
    for key, name in (("gen_height", "height"), ("gen_width", "width"), ("gen_frames", "frames"), ("gen_steps", "steps")):
        if params.get(name) is not None:
            ss[key] = int(params[name])
    if "decode_chunk_size" in params:
        ss.gen_chunk = int(params["decode_chunk_size"] or 0)
    if params.get("offload"):
        ss.gen_offload = params["offload"]
    ss.gen_resolution = _resolution_choice(spec, ss.gen_height, ss.gen_width)
    ss.gen_refused = None
    ss.gen_force = False


def _on_resolution() -> None:
    ss = st.session_state
    if ss.gen_resolution != CUSTOM:
        h, w = ss.gen_resolution.split("×")
        ss.gen_height, ss.gen_width = int(h), int(w)


@st.cache_data(ttl=FREE_MEMORY_TTL_S, show_spinner=False)
def _free_memory(root: str) -> tuple[int | None, str | None]:
    from collector import capacity
    from data.paths import DataPaths

    free, name = capacity.free_memory(DataPaths(Path(root)), settings=resources.settings())
    return (None if free is None else free // FREE_MEMORY_STEP * FREE_MEMORY_STEP), name


@st.cache_data(ttl=60, show_spinner=False)
def _history(root: str, model: str, gpu_name: str | None) -> list[dict]:
    from data.paths import DataPaths
    from engine.intake.submission import run_history

    return run_history(DataPaths(Path(root)), model, gpu_name)


@st.cache_data(max_entries=256, show_spinner=False)
def _preflight(root: str, model: str, params: tuple, free: int | None, gpu_name: str | None, margin: float):
    from engine.foresight import preflight

    return preflight(model, dict(params), free, safety_margin_gib=margin, gpu_name=gpu_name,
                     history=_history(root, model, gpu_name))


@st.cache_data(max_entries=64, show_spinner=False)
def _recommend(root: str, model: str, free: int | None, gpu_name: str | None, margin: float,
               guidance: float | None):
    from engine.foresight import recommend

    return recommend(model, free, gpu_name=gpu_name, time_budget_s=None, safety_margin_gib=margin,
                     history=_history(root, model, gpu_name), guidance=guidance)


def _raw_params(spec: ModelSpec) -> dict:
    ss = st.session_state
    return {
        "model": spec.id,
        "prompt": ss.get("gen_prompt", "") if spec.takes_prompt else "",
        "negative_prompt": ss.get("gen_negative", "") if spec.takes_prompt else "",
        "height": ss.gen_height, "width": ss.gen_width, "frames": ss.gen_frames, "steps": ss.gen_steps,
        "guidance": ss.gen_guidance, "seed": ss.gen_seed, "fps": ss.gen_fps,
        "decode_chunk_size": (ss.gen_chunk or None) if spec.supports_decode_chunk else None,
        "offload": ss.gen_offload,
    }


def _params_text(params: dict) -> str:
    chunk = params.get("decode_chunk_size")
    return (f"{fmt.resolution(params.get('height'), params.get('width'))}, {params.get('frames')} frames, "
            f"{params.get('steps')} steps, decode_chunk_size {chunk if chunk is not None else 'all'}, "
            f"offload {params.get('offload')}")


def controls(spec: ModelSpec) -> None:
    ss = st.session_state
    st.selectbox("Model", list(MODELS), key="gen_model", on_change=_set_defaults,
                 format_func=lambda m: f"{m} (smoke test)" if MODELS[m].smoke_test else m)
    st.caption(spec.description)
    if spec.takes_prompt:
        st.text_area("Prompt", key="gen_prompt", height=80, placeholder="what should move, and how")
        st.text_input("Negative prompt", key="gen_negative")
    else:
        st.caption(f"{spec.id} takes no prompt: the image alone drives the video.")
    presets = [_label(h, w) for h, w in spec.presets] + [CUSTOM]
    if ss.gen_resolution not in presets:
        ss.gen_resolution = CUSTOM
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.selectbox("Resolution (height×width)", presets, key="gen_resolution", on_change=_on_resolution)
    custom = ss.gen_resolution == CUSTOM
    m = spec.size_multiple
    c2.number_input("Height", min_value=m, max_value=spec.max_side, step=m, key="gen_height", disabled=not custom)
    c3.number_input("Width", min_value=m, max_value=spec.max_side, step=m, key="gen_width", disabled=not custom)
    c1, c2, c3 = st.columns(3)
    c1.number_input("Frames", min_value=spec.min_frames, max_value=spec.max_frames,
                    step=spec.frame_step, key="gen_frames",
                    help=f"{spec.frame_step}k+1 for this model" if spec.frame_step > 1 else None)
    c2.number_input("Steps", min_value=1, max_value=500, key="gen_steps")
    c3.number_input("Guidance", min_value=0.0, max_value=50.0, step=0.5, key="gen_guidance")
    c1, c2, c3 = st.columns(3)
    c1.number_input("Seed", min_value=0, step=1, key="gen_seed")
    c2.number_input("FPS", min_value=1, max_value=120, key="gen_fps")
    if spec.supports_decode_chunk:
        c3.number_input("decode_chunk_size", min_value=0, max_value=spec.max_frames, key="gen_chunk",
                        help="frames the VAE decodes at once; lower needs less memory. 0: all at once")
    else:
        c3.caption("decode_chunk_size: not used by this model")
    st.radio("Offload", OFFLOAD_MODES, key="gen_offload", horizontal=True,
             help="model: whole models move to the GPU in turn; sequential: layer by layer (least memory, slowest)")


def foresight_panel(spec: ModelSpec) -> None:
    """Predicted memory against free memory, predicted time, and the 💡 recommendation."""
    settings = resources.settings()
    root = str(resources.paths(settings).root)
    free, gpu_name = _free_memory(root)
    margin = settings.engine.safety_margin_gib
    st.markdown(f"**GPU:** {gpu_name or 'none found'} · **free for a job:** {fmt.gib(free)}",
                help="free memory plus what i2vmon's own worker on that GPU holds (its next job runs there)")
    raw = _raw_params(spec)
    try:  # the prediction needs the settings only; a missing prompt is reported on Generate
        params = check_params({**raw, "prompt": raw["prompt"] or "-"}).to_dict()
    except InputError as exc:
        st.warning(str(exc))
        params = None
    if params is not None:
        key = tuple(sorted((k, params[k]) for k in ("height", "width", "frames", "steps", "decode_chunk_size", "offload",
                                                     "guidance")))
        decision = _preflight(root, spec.id, key, free, gpu_name, margin)
        p = decision.prediction
        c1, c2 = st.columns(2)
        c1.metric("Predicted peak memory", fmt.gib(p.required_free_gib * 2**30) if p.required_free_gib else fmt.NA,
                  help=f"peak reserved + CUDA context; {p.memory_source}")
        compile_note = (f"; includes {fmt.seconds(p.compile_s)} compiling: the first job at this resolution on this "
                        "machine compiles the model for it once" if p.compile_s else "")
        c2.metric("Predicted time", fmt.seconds(p.seconds), help=f"time from {p.time_source}{compile_note}")
        if p.compile_s:
            st.caption(f"⏱ First job at this resolution here: about {fmt.seconds(p.compile_s)} of it is compiling "
                       "(once per machine; later jobs load the compiled model).")
        if p.batch == 1:
            st.caption(f"Guidance {params['guidance']:g}: no classifier-free guidance, so the model runs once per "
                       "step instead of twice — about half the time and activation memory, and the video follows "
                       "the prompt and image conditioning less strongly. Above 1 turns it on.")
        if free is not None and p.required_free_gib:
            need = (p.required_free_gib + margin) * 2**30
            st.progress(min(1.0, need / free) if free else 1.0,
                        text=f"needs {fmt.gib(need)} (with {margin:g} GiB margin) of {fmt.gib(free)} free")
        if decision.fits:
            st.caption(decision.message)
        else:
            st.error(decision.message)
    rec = _recommend(root, spec.id, free, gpu_name, margin, params["guidance"] if params is not None else None)
    same = params is not None and all(params.get(k) == v for k, v in rec.params.items())
    st.info(f"**Recommended:** {_params_text(rec.params)} — {rec.reason}", icon="💡")
    st.button("Apply recommendation", key="gen_apply_rec", on_click=_apply, args=(dict(rec.params),),
              disabled=same, help="already applied" if same else None)


def image_input(settings) -> tuple[bytes | None, str]:
    upload = st.file_uploader("Input image", type=IMAGE_TYPES, key="gen_image")
    if upload is None:
        st.caption("Upload the first frame: PNG, JPEG, WEBP, BMP, GIF or TIFF, "
                   f"up to {settings.engine.max_image_bytes / 2**20:.0f} MiB.")
        return None, ""
    data = upload.getvalue()
    try:
        checked = check_image_bytes(data, name=upload.name, max_bytes=settings.engine.max_image_bytes,
                                    max_pixels=settings.engine.max_image_pixels)
    except InputError as exc:
        st.error(str(exc))
        return None, upload.name
    st.image(checked.image, width=220, caption=f"{upload.name} · {checked.size[0]}×{checked.size[1]} {checked.format}")
    return data, upload.name


def refused_panel() -> None:
    refused = st.session_state.get("gen_refused")
    if not refused:
        return
    st.error(refused["message"])
    pred = refused.get("prediction") or {}
    st.caption(f"Predicted: peak reserved {fmt.number(pred.get('peak_reserved_gib'), '.2f', 'GiB')} + CUDA context "
               f"{fmt.number(pred.get('cuda_context_gib'), '.2f', 'GiB')} · time {fmt.seconds(pred.get('seconds'))}")
    for i, s in enumerate(refused.get("suggestions") or []):
        c1, c2 = st.columns([5, 1])
        c1.write(f"**{s['change']}** — needs {fmt.number(s.get('required_free_gib'), '.2f', 'GiB')}, "
                 f"about {fmt.seconds(s.get('seconds'))}")
        c2.button("Apply", key=f"gen_apply_suggestion_{i}", on_click=_apply, args=(dict(s["params"]),))
    st.checkbox("Submit anyway (it may run out of memory)", key="gen_force")


def submit_job(settings, spec: ModelSpec, image: bytes, image_name: str) -> None:
    from engine.intake.submission import PreflightRefused, submit

    queue = resources.queue(settings)
    try:
        done = submit(settings, queue, _raw_params(spec), image, image_name=image_name,
                      force=bool(st.session_state.get("gen_force")))
    except PreflightRefused as exc:
        st.session_state.gen_refused = {"message": str(exc), "suggestions": exc.suggestions,
                                        "prediction": exc.prediction}
        return
    except InputError as exc:
        st.session_state.gen_refused = None
        st.error(str(exc))
        return
    st.session_state.gen_refused = None
    st.session_state.gen_job_id = done.job.id
    st.toast(f"queued job {done.job.id[:8]}")


def main() -> None:
    ss = st.session_state
    settings = resources.settings()
    for key in PARAM_KEYS:  # keep hidden widgets' values
        if key in ss:
            ss[key] = ss[key]
    if ss.get("gen_model") not in MODELS:
        free, _ = _free_memory(str(resources.paths(settings).root))
        cpu_model = settings.engine.cpu_model if settings.engine.cpu_model in MODELS else next(iter(MODELS))
        ss.gen_model = cpu_model if free is None else next(m for m, s in MODELS.items() if not s.smoke_test)
        ss.gen_seed = 0
        _set_defaults()
    spec = MODELS[ss.gen_model]

    st.title("Generate")
    left, right = st.columns([3, 2], gap="large")
    with left:
        controls(spec)
    with right:
        image, image_name = image_input(settings)
        foresight_panel(spec)
    refused_panel()
    if st.button("Generate", type="primary", disabled=image is None, key="gen_submit",
                 help=None if image is not None else "upload an image first"):
        submit_job(settings, spec, image, image_name)
        if ss.get("gen_refused"):
            st.rerun()

    job_id = ss.get("gen_job_id")
    if job_id:
        st.subheader("Job")
        job_panel.draw(resources.queue(settings), job_id)
    st.subheader("Queue")
    queue_table.draw(resources.queue(settings))


guarded(main)
