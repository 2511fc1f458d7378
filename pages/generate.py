"""Generate: an image and settings in (the memory mode among them: offload, and for the Wan models the
weights' storage); beside them the predicted GPU memory, host RAM and time against this machine's free GPU
memory and host RAM, and the recommendation; submit, follow the job, watch the video; the queue below."""

from pathlib import Path

import streamlit as st

from app.views import formatting as fmt, job_panel, param_checks, queue_table, resources, speed_mode
from app.views.frame import guarded
from app.views.sign_in import signed_in_user
from engine.foresight.memory_modes import HOST_MARGIN_GIB
from engine.intake.validation import MAX_GUIDANCE, MAX_STEPS, InputError, check_image_bytes, check_params
from engine.registry import MODELS, ModelSpec

CUSTOM = "custom"
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
# Widgets whose values must survive while they are hidden (Streamlit forgets an unrendered widget's state).
PARAM_KEYS = ("gen_model", "gen_prompt", "gen_negative", "gen_resolution", "gen_height", "gen_width", "gen_frames",
              "gen_steps", "gen_guidance", "gen_seed", "gen_fps", "gen_chunk", "gen_offload", "gen_weights",
              "gen_video_only", "gen_audio_guidance", speed_mode.TRADES_KEY)
FREE_MEMORY_TTL_S = 2
FREE_MEMORY_STEP = 64 * 2**20  # round readings so predictions are cached across small changes
HOST_MEMORY_STEP = 256 * 2**20
OFFLOAD_HELP = {
    "none": "every weight on the GPU: fastest, most GPU memory",
    "model": "whole models move to the GPU in turn; the others wait in host RAM",
    "group": "groups of blocks stream to the GPU as they run; the weights wait in pinned host RAM",
    "sequential": "layer by layer: least GPU memory, slowest; the weights wait in host RAM",
}
WEIGHTS_HELP = {"bf16": "the compute dtype", "fp8": "stored in fp8 and upcast layer by layer: about half the "
                "weights' memory, a little slower per step"}


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
    ss.gen_weights = _weights_choice(spec, None)
    ss.gen_video_only, ss.gen_audio_guidance = False, spec.audio_guidance
    ss[speed_mode.TRADES_KEY] = []  # quality trades are opt-in, job by job: a new model starts without any
    ss.gen_refused = None


def _weights_choice(spec: ModelSpec, weights: str | None) -> str | None:
    """The weight-storage control's value for a job's `weights` (None: the compute dtype, the first choice)."""
    if not spec.weight_storages:
        return None
    return weights if weights in spec.weight_storages else spec.weight_storages[0]


def _apply(params: dict, model: str | None = None) -> None:
    """Set the widgets to `params` (a recommendation or a pre-flight suggestion; `model`: a suggestion's other
    model, switched to first at its defaults); the rerun shows them."""
    ss = st.session_state
    if model and model in MODELS and model != ss.gen_model:
        ss.gen_model = model
        _set_defaults()
    spec = MODELS[ss.gen_model]
    for key, name in (("gen_height", "height"), ("gen_width", "width"), ("gen_frames", "frames"), ("gen_steps", "steps")):
        if params.get(name) is not None:
            ss[key] = int(params[name])
    if "decode_chunk_size" in params:
        ss.gen_chunk = int(params["decode_chunk_size"] or 0)
    if params.get("offload") in spec.offload_modes:
        ss.gen_offload = params["offload"]
    if "weights" in params:
        ss.gen_weights = _weights_choice(spec, params["weights"])
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


@st.cache_data(ttl=FREE_MEMORY_TTL_S, show_spinner=False)
def _host_free(root: str) -> int | None:
    """Host RAM a job can have on this machine (collector.capacity), rounded so predictions stay cached."""
    from collector import capacity
    from data.paths import DataPaths

    free = capacity.host_free_memory(DataPaths(Path(root)), settings=resources.settings())
    return None if free is None else free // HOST_MEMORY_STEP * HOST_MEMORY_STEP


@st.cache_data(ttl=60, show_spinner=False)
def _history(root: str, model: str, gpu_name: str | None) -> list[dict]:
    from data.paths import DataPaths
    from engine.intake.submission import run_history

    return run_history(DataPaths(Path(root)), model, gpu_name)


@st.cache_data(max_entries=256, show_spinner=False)
def _preflight(root: str, model: str, params: tuple, free: int | None, gpu_name: str | None, margin: float,
               host_free: int | None = None):
    from engine.foresight import preflight

    return preflight(model, dict(params), free, safety_margin_gib=margin, gpu_name=gpu_name,
                     history=_history(root, model, gpu_name), host_free_bytes=host_free)


@st.cache_data(max_entries=64, show_spinner=False)
def _recommend(root: str, model: str, free: int | None, gpu_name: str | None, margin: float,
               guidance: float | None, host_free: int | None = None):
    from engine.foresight import recommend

    return recommend(model, free, gpu_name=gpu_name, time_budget_s=None, safety_margin_gib=margin,
                     history=_history(root, model, gpu_name), guidance=guidance, host_free_bytes=host_free)


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
        "weights": ss.get("gen_weights") if spec.weight_storages else None,
        **({"video_only": bool(ss.get("gen_video_only")), "audio_guidance": ss.get("gen_audio_guidance")}
           if spec.makes_audio else {}),
        **({"speed_trades": speed_mode.chosen_trades(spec)} if spec.speed_trades else {}),
    }


def _params_text(params: dict) -> str:
    chunk = params.get("decode_chunk_size")
    return (f"{fmt.resolution(params.get('height'), params.get('width'))}, {params.get('frames')} frames, "
            f"{params.get('steps')} steps, decode_chunk_size {chunk if chunk is not None else 'all'}, "
            f"{fmt.memory_mode(params.get('offload'), params.get('weights'))}")


def _number(column, label: str, key: str, problem: dict[str, str], field: str, **kwargs) -> None:
    """A number input with no bounds of its own (its browser side would keep an out-of-range value to itself and
    the page go on with the last valid one): the value is checked as the engine checks it, and what is wrong is
    said under the field. `value=` is the state's own: the browser draws it at once, not the widget's default
    first (the form flashed frames 2, steps 1, 32×32 before the defaults)."""
    column.number_input(label, key=key, value=st.session_state.get(key), **kwargs)
    if field in problem:
        column.error(problem[field], icon="⛔")


def controls(spec: ModelSpec, problem: dict[str, str] | None = None) -> None:
    ss = st.session_state
    problem = problem or {}
    st.selectbox("Model", list(MODELS), key="gen_model", on_change=_set_defaults,
                 format_func=lambda m: f"{m} (smoke test)" if MODELS[m].smoke_test else m)
    st.caption(spec.description)
    if spec.takes_prompt:
        st.text_area("Prompt", key="gen_prompt", height=80, placeholder="what should move, and how")
        if "prompt" in problem:
            st.caption(f"⛔ {problem['prompt']}")
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
    _number(c2, "Height", "gen_height", problem, "height", step=m, disabled=not custom,
            help=f"a multiple of {m}, at most {spec.max_side}")
    _number(c3, "Width", "gen_width", problem, "width", step=m, disabled=not custom,
            help=f"a multiple of {m}, at most {spec.max_side}")
    c1, c2, c3 = st.columns(3)
    rule = f" ({spec.frame_step}k+1)" if spec.frame_step > 1 else ""
    _number(c1, f"Frames{rule}", "gen_frames", problem, "frames", step=spec.frame_step,
            help=(f"{spec.id}'s VAE takes {spec.frame_step}k+1 frames: {spec.min_frames}, "
                  f"{spec.min_frames + spec.frame_step}, {spec.min_frames + 2 * spec.frame_step}, … "
                  f"up to {spec.max_frames}") if spec.frame_step > 1
            else f"{spec.min_frames} to {spec.max_frames}")
    _number(c2, "Steps", "gen_steps", problem, "steps", help=f"1 to {MAX_STEPS}")
    _number(c3, "Guidance", "gen_guidance", problem, "guidance", step=0.5, help=f"0 to {MAX_GUIDANCE:g}")
    c1, c2, c3 = st.columns(3)
    _number(c1, "Seed", "gen_seed", problem, "seed", step=1)
    _number(c2, "FPS", "gen_fps", problem, "fps", help="1 to 120")
    if spec.supports_decode_chunk:
        _number(c3, "decode_chunk_size", "gen_chunk", problem, "decode_chunk_size",
                help="frames the VAE decodes at once; lower needs less memory. 0: all at once")
    else:
        c3.caption("decode_chunk_size: not used by this model")
    memory_mode_controls(spec)
    trade_controls(spec)
    sound_controls(spec, problem)
    for field in ("offload", "weights", "speed_trades", "form"):
        if field in problem:
            st.error(problem[field], icon="⛔")


def memory_mode_controls(spec: ModelSpec) -> None:
    """Where the weights live while the job runs (the model's offload modes) and, for a model that offers a
    choice, how they are stored."""
    ss = st.session_state
    if ss.get("gen_offload") not in spec.offload_modes:
        ss.gen_offload = "none"
    c1, c2 = st.columns([3, 2])
    c1.radio("Offload (memory mode)", spec.offload_modes, key="gen_offload", horizontal=True,
             help="Where the weights live while the job runs; offload trades GPU memory for host RAM and time. "
                  + " · ".join(f"**{m}**: {OFFLOAD_HELP.get(m, m)}" for m in spec.offload_modes))
    if spec.weight_storages:
        if ss.get("gen_weights") not in spec.weight_storages:
            ss.gen_weights = _weights_choice(spec, None)
        c2.radio("Weight storage", spec.weight_storages, key="gen_weights", horizontal=True,
                 help=" · ".join(f"**{w}**: {WEIGHTS_HELP.get(w, w)}" for w in spec.weight_storages))
    else:
        c2.caption(f"Weight storage: {spec.id} keeps its weights in its compute dtype (no choice).")


@st.cache_data(ttl=60, show_spinner=False)
def _trade_effects(root: str, model: str, gpu_name: str | None, trades: tuple[str, ...]) -> dict:
    """What each quality trade did in this machine's runs of `model` on this GPU (data.analytics.trade_effects)."""
    from data.analytics import trade_effects

    return trade_effects(resources._store(root), model, gpu_name, trades)


def trade_controls(spec: ModelSpec) -> None:
    """Speed mode's quality trades the model offers, opt-in, each with its measured speed-up and deviation: this
    GPU's runs first, else the reference figures measured on a GPU and shipped with i2vmon."""
    if not spec.speed_trades:
        return
    from engine.foresight.calibration import load_trade_figures

    root = str(resources.paths(resources.settings()).root)
    _, gpu_name = _free_memory(root)
    effects = _trade_effects(root, spec.id, gpu_name, tuple(spec.speed_trades))
    speed_mode.trade_controls(spec, effects, load_trade_figures().get(spec.id, {}))


def sound_controls(spec: ModelSpec, problem: dict[str, str]) -> None:
    """For a model that makes a soundtrack (LTX-2): keep it or not, and the audio's own guidance scale."""
    if not spec.makes_audio:
        return
    ss = st.session_state
    if ss.get("gen_audio_guidance") is None:
        ss.gen_audio_guidance = spec.audio_guidance
    with st.expander("Soundtrack (advanced)"):
        st.checkbox("Video only: no audio stream in the MP4", key="gen_video_only",
                    help=f"{spec.id} generates a soundtrack with the video (its denoiser is joint, so the sound is "
                         "generated either way); this leaves it out of the file")
        st.number_input("Audio guidance", key="gen_audio_guidance", value=ss.gen_audio_guidance,
                        help=f"the audio modality's guidance scale (the video's is Guidance above); "
                             f"default {spec.audio_guidance:g}")
        if "audio_guidance" in problem:
            st.error(problem["audio_guidance"], icon="⛔")


def foresight_panel(spec: ModelSpec) -> None:
    """Predicted GPU memory, host RAM and time against what this machine has free, the suggestions where they
    do not fit, and the 💡 recommendation."""
    settings = resources.settings()
    root = str(resources.paths(settings).root)
    free, gpu_name = _free_memory(root)
    host_free = _host_free(root)
    margin = settings.engine.safety_margin_gib
    st.markdown(f"**GPU:** {gpu_name or 'none found'} · **free for a job:** {fmt.gib(free)} · "
                f"**host RAM free:** {fmt.gib(host_free, 1)}",
                help="GPU: free memory plus what i2vmon's own worker on that GPU holds (its next job runs there). "
                     "Host RAM: what the OS has available plus what i2vmon's workers hold (an offloaded job's "
                     "weights live there).")
    raw = _raw_params(spec)
    try:  # the prediction needs the settings only; a missing prompt is reported on Generate
        params = check_params({**raw, "prompt": raw["prompt"] or "-"}).to_dict()
    except InputError as exc:  # said beside its field
        st.caption(f"No prediction until the settings are valid ({exc}).")
        params = None
    if params is not None:
        key = tuple(sorted((k, params[k]) for k in ("height", "width", "frames", "steps", "decode_chunk_size", "offload",
                                                     "weights", "guidance")))
        decision = _preflight(root, spec.id, key, free, gpu_name, margin, host_free)
        prediction_figures(decision.prediction, params)
        fit_bars(decision.prediction, free, gpu_name, host_free, margin)
        if decision.fits:
            st.caption(decision.message)
        else:
            st.error(decision.message)
            if not st.session_state.get("gen_refused"):  # after a refused submit its panel offers them
                suggestion_rows(decision.suggestions, "gen_fit_suggestion")
    rec = _recommend(root, spec.id, free, gpu_name, margin, params["guidance"] if params is not None else None,
                     host_free)
    same = params is not None and all(params.get(k) == v for k, v in rec.params.items())
    long = f" · {fmt.about(rec.prediction.seconds)}" if (rec.prediction.seconds or 0) >= 120 else ""
    st.info(f"**Recommended:** {_params_text(rec.params)}{long} — {rec.reason}", icon="💡")
    st.button("Apply recommendation", key="gen_apply_rec", on_click=_apply, args=(dict(rec.params),),
              disabled=same, help="already applied" if same else None)


def prediction_figures(p, params: dict) -> None:
    """The prediction's GPU memory, host RAM and time, with what the memory mode and guidance do to them."""
    c1, c2 = st.columns(2)  # two a row: the right-hand column is narrow
    c1.metric("Predicted GPU memory", fmt.gib(p.required_free_gib * 2**30) if p.required_free_gib else fmt.NA,
              help=f"peak reserved + CUDA context; {p.memory_source}")
    c2.metric("Predicted host RAM", fmt.gib(p.host_peak_gib * 2**30, 1) if p.host_peak_gib is not None else fmt.NA,
              help=f"the worker's peak resident host memory over the job; {p.host_source}")
    compile_note = (f"; includes {fmt.seconds(p.compile_s)} compiling: the first job at this resolution on this "
                    "machine compiles the model for it once" if p.compile_s else "")
    c1, c2 = st.columns(2)
    c1.metric("Predicted time", fmt.seconds(p.seconds), help=f"time from {p.time_source}{compile_note}")
    c2.caption(f"How far to trust it: {fmt.trust(p)}")
    if params["offload"] != "none":
        held = (f" ({fmt.gib(p.host_weights_gib * 2**30, 1)} of the {fmt.gib(p.host_peak_gib * 2**30, 1)} host peak)"
                if p.host_weights_gib and p.host_peak_gib is not None else "")
        st.caption(f"🧠 {fmt.memory_mode(params['offload'], params.get('weights')).capitalize()}: offload keeps the "
                   f"weights in host RAM{held} while the job runs and moves them to the GPU as they are needed — less "
                   "GPU memory, more host RAM and time.")
    elif params.get("weights") == "fp8":
        st.caption("🧠 fp8 weights: the weights are stored in fp8 on the GPU and upcast layer by layer — about half "
                   "their memory, a little slower per step.")
    if p.seconds is not None and p.seconds >= 120:
        parts = [(name, value) for name, value in (("encoding", p.encode_s), ("denoising", p.denoising_s),
                                                   ("decoding", p.decode_s), ("offload transfers", p.transfer_s),
                                                   ("compiling", p.compile_s)) if value and value >= 1]
        per_step = f" ({fmt.number(p.s_per_step, '.1f', 's')} per step × {p.steps})" if p.s_per_step else ""
        st.caption(f"⏱ A long job: {fmt.about(p.seconds)} — "
                   + ", ".join(f"{name} {fmt.about(value).removeprefix('about ')}"
                               + (per_step if name == "denoising" else "") for name, value in parts) + ".")
    if p.compile_s:
        st.caption(f"⏱ First job at this resolution here: about {fmt.seconds(p.compile_s)} of it is compiling "
                   "(once per machine; later jobs load the compiled model).")
    elif p.compiles_in_background:
        st.caption("⏱ First job at this resolution here: it runs uncompiled, at the stock pace (the time above), while "
                   "the machine compiles this size in the background; the next job at it runs in speed mode.")
    if p.batch == 1:
        st.caption(f"Guidance {params['guidance']:g}: no classifier-free guidance, so the model runs once per "
                   "step instead of twice — about half the time and activation memory, and the video follows "
                   "the prompt and image conditioning less strongly. Above 1 turns it on.")


def fit_bars(p, free: int | None, gpu_name: str | None, host_free: int | None, margin: float) -> None:
    """Whether the prediction fits this machine: the GPU's free memory, and its free host RAM (checked, as by
    pre-flight, where there is a GPU reading)."""
    if free is None or not p.required_free_gib:
        return
    need = (p.required_free_gib + margin) * 2**30
    st.progress(min(1.0, need / free) if free else 1.0,
                text=f"GPU {gpu_name or ''}: {'fits' if need <= free else 'does not fit'} — needs {fmt.gib(need)} "
                     f"(with {margin:g} GiB margin) of {fmt.gib(free)} free")
    if host_free is not None and p.host_peak_gib is not None:
        need = (p.host_peak_gib + HOST_MARGIN_GIB) * 2**30
        st.progress(min(1.0, need / host_free) if host_free else 1.0,
                    text=f"host RAM: {'fits' if need <= host_free else 'does not fit'} — needs {fmt.gib(need, 1)} "
                         f"(with {HOST_MARGIN_GIB:g} GiB margin) of {fmt.gib(host_free, 1)} free")


def suggestion_rows(suggestions: list[dict] | None, key_prefix: str) -> None:
    """Pre-flight's suggestions, each with its predicted memory and time and a button that applies it (one that
    names another model switches to it)."""
    for i, s in enumerate(suggestions or []):
        host = (f", {fmt.number(s['host_peak_gib'], '.1f', 'GiB')} of host RAM"
                if s.get("host_peak_gib") is not None else "")
        time = fmt.about(s["seconds"]) if s.get("seconds") is not None else "time not estimated"
        if s.get("expected_error") is not None:
            time += f" ({fmt.trust(s)})"
        model = s.get("model")
        with st.container(border=True):  # the page's right-hand column is narrow: the button under its text
            st.write(f"**{s['change']}** — needs {fmt.number(s.get('required_free_gib'), '.2f', 'GiB')} of GPU "
                     f"memory{host}, {time}")
            st.button(f"Switch to {model}" if model else "Apply", key=f"{key_prefix}_{i}", on_click=_apply,
                      args=(dict(s["params"]), model))


def image_input(settings) -> tuple[bytes | None, str]:
    upload = st.file_uploader("Input image", type=IMAGE_TYPES, key="gen_image",
                              max_upload_size=max(1, settings.engine.max_image_bytes // 2**20))
    if upload is None:
        st.caption("Upload the first frame: PNG, JPEG, WEBP, BMP, GIF or TIFF, "
                   f"up to {settings.engine.max_image_bytes / 2**20:.0f} MiB.")
        return None, ""
    data = upload.getvalue()
    try:
        checked = check_image_bytes(data, name=upload.name, max_bytes=settings.engine.max_image_bytes,
                                    max_pixels=settings.engine.max_image_pixels,
                                    max_decoded_bytes=settings.engine.max_image_decoded_bytes)
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
    host = (f" · host RAM {fmt.number(pred.get('host_peak_gib'), '.1f', 'GiB')}"
            if pred.get("host_peak_gib") is not None else "")
    st.caption(f"Predicted: peak reserved {fmt.number(pred.get('peak_reserved_gib'), '.2f', 'GiB')} + CUDA context "
               f"{fmt.number(pred.get('cuda_context_gib'), '.2f', 'GiB')}{host} · time {fmt.seconds(pred.get('seconds'))}"
               f" ({fmt.trust(pred)})")
    suggestion_rows(refused.get("suggestions"), "gen_apply_suggestion")
    # Not a memory refusal: no worker can run it here now (no GPU worker, no weights, no GPU large enough).
    cannot_run = refused.get("kind") == "CannotRunHere"
    st.checkbox("Queue it anyway (it waits for a worker that can run it)" if cannot_run
                else "Submit anyway (it may run out of memory)", key="gen_force")


def submit_job(settings, spec: ModelSpec, image: bytes, image_name: str) -> None:
    from engine.intake.submission import PreflightRefused, submit

    queue = resources.queue(settings)
    try:
        done = submit(settings, queue, _raw_params(spec), image, image_name=image_name,
                      force=bool(st.session_state.get("gen_force")), submitted_by=signed_in_user())
    except PreflightRefused as exc:
        st.session_state.gen_refused = {"message": str(exc), "suggestions": exc.suggestions,
                                        "prediction": exc.prediction, "kind": type(exc).__name__}
        return
    except InputError as exc:
        st.session_state.gen_refused = None
        st.error(str(exc))
        return
    st.session_state.gen_refused = None
    job_panel.follow(done.job.id, mine=True)
    st.toast(f"queued job {done.job.id[:8]}: {param_checks.summary(done.job.params)}")


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
    raw = _raw_params(spec)
    problem = param_checks.problems(raw)
    left, right = st.columns([3, 2], gap="large")
    with left:
        controls(spec, problem)
    with right:
        image, image_name = image_input(settings)
        foresight_panel(spec)
    refused_panel()
    first = next(iter(problem.values()), None)
    reason = first or ("upload an image first" if image is None else None)
    if not problem:
        st.caption(f"**Will queue:** {param_checks.summary(check_params(raw))}")
    elif set(problem) == {"prompt"}:  # a fresh form: not an error yet
        st.caption(f"Generate waits for a prompt: {first}")
    else:
        more = f" (and {len(problem) - 1} more above)" if len(problem) > 1 else ""
        st.error(f"Nothing is queued until this is fixed: {first}{more}", icon="⛔")
    if st.button("Generate", type="primary", disabled=reason is not None, key="gen_submit", help=reason):
        submit_job(settings, spec, image, image_name)
        if ss.get("gen_refused"):
            st.rerun()
    job_panel.section(resources.queue(settings))
    st.subheader("Queue")
    queue_table.draw(resources.queue(settings))


guarded(main)
