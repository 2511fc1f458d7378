"""Settings read from a TOML file and `I2VMON_*` environment variables.

Precedence (highest first): explicit arguments, environment (`I2VMON_DATA_DIR`,
nested with a double underscore: `I2VMON_COLLECTOR__INTERVAL_S=2`), the TOML file
(`I2VMON_CONFIG`, else `i2vmon.toml` in the data directory's parent checkout or the
working directory), then the defaults below.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.unknown_keys import check_environment, check_toml

CHECKOUT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = CHECKOUT_DIR / "i2vmon-data"


class AlertRule(BaseModel):
    """A Prometheus-style rule: `metric op threshold` held for `for_s` seconds.

    Hysteresis: once firing, the alert resolves only when the value is back past
    `threshold ∓ hysteresis`, so a value hovering at the threshold does not flap.
    """

    name: str
    metric: str
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    level: Literal["warning", "critical", "fatal"]
    for_s: float = Field(0.0, alias="for", ge=0)
    hysteresis: float = Field(0.0, ge=0)
    message: str = ""
    action: str = ""

    model_config = {"populate_by_name": True}


def default_alert_rules() -> list[AlertRule]:
    return [
        AlertRule(
            name="gpu_memory_high", metric="memory_used_percent", threshold=85, level="warning",
            for_s=5, hysteresis=3, message="GPU memory above 85%",
            action="lower the resolution, frames or decode_chunk_size of the next job",
        ),
        AlertRule(
            name="gpu_memory_critical", metric="memory_used_percent", threshold=95, level="critical",
            for_s=3, hysteresis=3, message="GPU memory above 95%",
            action="the engine cancels the running job and frees its memory",
        ),
        AlertRule(
            name="gpu_temperature_critical", metric="temp_c", threshold=85, level="critical",
            for_s=5, hysteresis=3, message="GPU temperature above 85 °C",
            action="the engine cancels the running job; check the cooling",
        ),
        AlertRule(
            name="repeated_oom", metric="consecutive_ooms", op=">=", threshold=3, level="fatal",
            for_s=0, hysteresis=0, message="3 consecutive out-of-memory failures",
            action="the engine worker is restarted; lower the job settings (see the recommendation)",
        ),
        AlertRule(
            name="gpu_lost", metric="gpu_lost", op=">=", threshold=1, level="critical",
            for_s=0, message="GPU fell off the bus or the driver stopped answering",
            action="check `nvidia-smi` and the kernel log; a reboot is usually needed",
        ),
    ]


class CollectorSettings(BaseModel):
    interval_s: float = Field(1.0, gt=0)
    flush_interval_s: float = Field(5.0, gt=0)
    live_window_s: int = Field(600, gt=0, description="seconds of samples kept in the live file")
    compact_after_parts: int = Field(12, ge=2)


class EngineSettings(BaseModel):
    heartbeat_s: float = Field(0.5, gt=0)
    lease_s: float = Field(10.0, gt=0)
    on_worker_death: Literal["requeue", "fail"] = "requeue"
    max_attempts: int = Field(2, ge=1, description="a job is requeued at most max_attempts-1 times")
    models_dir: Path | None = Field(None, description="local folder holding <model>/ snapshots")
    dtype: Literal["float16", "bfloat16"] = "float16"
    safety_margin_gib: float = Field(1.0, ge=0)
    max_image_pixels: int = Field(8192 * 8192, gt=0)
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_decoded_bytes: int = Field(
        192 * 1024 * 1024, gt=0,
        description="memory one input image may decode into (as decoded plus its RGB copy); a large JPEG is decoded at a reduced scale first",
    )
    max_consecutive_ooms: int = Field(3, ge=1)
    group_timeout_s: float = Field(
        900.0, gt=0, description="a job group's collectives wait this long for a rank (its model load included)")
    group_stop_grace_s: float = Field(60.0, gt=0, description="a stopping job group's ranks get this long to finish")
    group_auto_min_s: float = Field(
        300.0, ge=0, description="gpus=auto: a job predicted to take at least this long on one GPU runs on a group")
    cpu_model: str = "tiny"
    speed_mode: Literal["off", "compile"] = Field(
        "compile",
        description="compile: torch.compile the denoiser (CUDA only; elsewhere off). The parts below apply with it.",
    )
    speed_frame_convs: bool = Field(
        False, description="run (k,1,1) Conv3d layers as Conv2d (same weights, same maths); ndhwc does better and "
        "this is what runs where ndhwc cannot"
    )
    speed_channels_last: bool = Field(True, description="have inductor lay every convolution out channels-last")
    speed_conv3d_channels_last: bool = Field(
        True, description="have inductor lay 5-D convolutions (the temporal (3,1,1) ones) out channels-last too "
        "(same maths; where this PyTorch cannot, the frame convs run instead)"
    )
    speed_fused_qkv: bool = Field(
        True, description="each attention's query/key/value projections as one matmul (same maths)"
    )
    speed_short_attention: bool = Field(
        True, description="attention over a clip's frames (<= 64 tokens) by one Triton kernel; attention to one key "
        "computed directly (same maths)"
    )
    speed_compile_vae_decoder: bool = Field(
        True, description="compile the VAE's decoder as well (saved per decode-chunk shape, like the denoiser)"
    )
    speed_cudnn_benchmark: bool = Field(
        False, description="let cuDNN time its algorithms per shape (1-3% faster steps, ~5 s more on a process's first job)"
    )
    speed_precompile: bool = Field(
        True, description="save each compiled denoiser (per model and shape) so a new process loads it instead of tracing"
    )
    speed_compile: Literal["background", "inline"] = Field(
        "background", description="where a shape not compiled yet on this machine compiles: background (another "
        "process; the job meanwhile runs uncompiled, at the stock pace, and the next job at that shape runs "
        "compiled) or inline (inside the job's first step and decode: minutes for a UNet; the job waits). "
        "Background needs speed_precompile"
    )
    speed_fp8: bool = Field(
        False,
        description="opt-in quality trade for every job (a job may ask for it alone: speed_trades fp8): the "
        "denoiser's linear layers as torchao fp8 matmuls (per-row scales) on GPUs with fp8 tensor cores, "
        "compute capability 8.9 and up, with torchao installed (elsewhere off, the run record says why). Measured "
        "on an H200 for i2vgen-xl 512x512x16 (hand-written kernel): 9% slower and 33 dB PSNR against stock",
    )
    # The DiTs' parts (Wan, LTX-Video; engine/speed/dit_mode.py) and the per-job quality trades' settings.
    speed_regional_compile: bool = Field(
        True, description="DiTs: compile the transformer's repeated blocks (diffusers' compile_repeated_blocks), "
        "seconds inline in the first job, instead of the whole denoiser (same maths)",
    )
    speed_attention_backend: str = Field(
        "auto", description="DiTs: diffusers' attention backend. auto: time the usable ones (cuDNN, FlashAttention 3 "
        "or 2, PyTorch's flash) once per GPU and shape and keep the fastest; native: PyTorch's own choice; or a "
        "backend name such as _native_cudnn, _flash_3, flash (same maths)",
    )
    speed_cache_method: Literal["first_block", "mag", "taylorseer", "faster", "pab"] = Field(
        "first_block", description="the 'cache' trade's method (diffusers' enable_cache): first_block (First Block "
        "Cache), mag (MagCache), taylorseer, faster (FasterCache), pab (Pyramid Attention Broadcast)",
    )
    speed_cache_threshold: float = Field(
        0.05, gt=0, le=1, description="the 'cache' trade with first_block: skip the other blocks while the first "
        "block's output changed less than this (relative); higher is faster and further from stock",
    )
    warm_start: Literal["auto", "on", "off"] = Field(
        "auto", description="at start, run this GPU's last setting for 2 steps before the first claim, so the first "
        "job after a restart runs at a warm job's speed (auto: GPU workers only)",
    )
    random_weights: bool = Field(
        False, description="build full-size models from their configs with random weights (GPU measurements; output is noise)"
    )
    # The hung-job watchdog (engine/worker/watchdog.py): a step (or a predicted stage) that runs watchdog_factor times
    # its expected time, and never less than watchdog_min_s, fails the job as `timeout` and restarts the worker.
    watchdog: bool = Field(True, description="fail a job whose current step has run far beyond its expected time")
    watchdog_factor: float = Field(
        10.0, gt=1, description="k: a step may run k × its expected time (the job's own median step once it has one, "
        "else the predicted s/step; a predicted stage likewise) before the job fails as timed out",
    )
    watchdog_min_s: float = Field(
        120.0, gt=0, description="no step or stage is timed out before it has run this long (noise, first kernels)"
    )
    job_timeout_s: float = Field(
        4 * 3600.0, gt=0, description="absolute ceiling on a job's running time, compiles included"
    )
    frozen_worker_s: float = Field(
        60.0, gt=0, description="`engine serve` kills and replaces a worker whose running job has had no heartbeat "
        "this long (at least lease_s): a hang that froze the whole process, heartbeat thread included",
    )
    cancel_grace_s: float = Field(
        15.0, gt=0, description="a cancelled (or critically alerted) job stuck inside a step this long is ended by "
        "restarting its worker",
    )
    # Energy and cost per video (collector/job_energy.py): the GPU's energy over each job, priced per kWh.
    energy_price_per_kwh: float | None = Field(
        None, ge=0, description="electricity price per kWh for each run record's energy_cost (unset: no cost)"
    )
    energy_currency: str = Field("EUR", max_length=8, description="the currency of energy_price_per_kwh")


class QualitySettings(BaseModel):
    enabled: bool = True
    clip_model: str = "openai/clip-vit-base-patch32"
    low_quality_threshold: float = Field(0.6, ge=0, le=1)


class AppSettings(BaseModel):
    port: int = Field(8501, gt=0, lt=65536)
    host: str = Field(
        "127.0.0.1", description="address the UI listens on; anything but loopback needs auth.password_hash or auth.oidc_provider"
    )
    live_minutes: int = Field(10, gt=0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    token: str | None = None
    max_upload_mb: int = Field(25, gt=0)


class AlertSettings(BaseModel):
    rules: list[AlertRule] = Field(default_factory=default_alert_rules)


EventKind = Literal["job_succeeded", "job_failed", "job_cancelled", "alert_firing", "alert_resolved", "worker_restarted"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]
EventLevel = Literal["info", "warning", "critical", "fatal"]


class NotificationTarget(BaseModel):
    """Where events go, and which. `kind`: webhook (JSON, HMAC-signed when `secret` is set), alertmanager
    (Alertmanager's webhook format; alert events only), apprise (chat, e-mail, push: `url` is an Apprise URL
    such as `slack://…`, `mailto://…`, `ntfy://…`; several separated by spaces)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["webhook", "alertmanager", "apprise"]
    url: str = Field(min_length=1)
    secret: str | None = Field(None, description="webhook: the HMAC-SHA256 key the receiver verifies with")
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS))
    only_failures: bool = Field(False, description="only job_failed, worker_restarted and alert_firing")
    min_level: EventLevel = Field("info", description="skip events below this level (info < warning < critical < fatal)")
    submitted_by: list[str] = Field(
        default_factory=list,
        description="only jobs queued by these users (job events): the user signed in to the UI or the API, the OS "
        "user of `python -m engine submit`",
    )
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _http_url(self) -> "NotificationTarget":
        if self.kind != "apprise" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"notification target {self.name!r} ({self.kind}): url {self.url!r} must start with "
                             "http:// or https://")
        return self


class NotificationSettings(BaseModel):
    """Delivery is at least once: events wait in an outbox (notifications.db in the data directory) until each
    target accepted them; a failed attempt is retried after backoff_initial_s, doubling up to backoff_max_s."""

    targets: list[NotificationTarget] = Field(default_factory=list)
    deliver_every_s: float = Field(2.0, gt=0)
    scan_jobs_every_s: float = Field(5.0, gt=0)
    backoff_initial_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(900.0, gt=0)
    give_up_after_s: float = Field(7 * 86400.0, gt=0, description="a delivery failing this long is marked dead")
    ui_url: str | None = Field(None, description="a link to the UI put in messages, e.g. http://gpubox:8501")

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: list[NotificationTarget]) -> list[NotificationTarget]:
        names = [t.name for t in targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"notification target names must be unique; repeated: {', '.join(dup)}")
        return targets


class RegressionSettings(BaseModel):
    """A drift rule per setting (data.analytics.SETTING_KEYS, same host and GPU): the median of its last
    `recent_runs` succeeded runs against the median of the `baseline_runs` before them; fires when worse by more
    than the margin (relative), and only with `min_baseline_runs` runs of history."""

    enabled: bool = True
    recent_runs: int = Field(5, ge=1)
    baseline_runs: int = Field(10, ge=1)
    min_baseline_runs: int = Field(5, ge=1)
    s_per_step_margin: float = Field(0.15, gt=0)
    peak_memory_margin: float = Field(0.10, gt=0)
    quality_margin: float = Field(0.10, gt=0)
    level: Literal["warning", "critical"] = Field(
        "warning", description="the level of the regression's event (routing to targets); the UI's alert list "
        "shows it as a warning, since a critical alert there stops the running job")
    lookback_days: int = Field(60, gt=0)
    check_every_s: float = Field(60.0, gt=0)


class AuthSettings(BaseModel):
    """Who may use the UI (and the API with the same identity). Off while nothing is set and the UI is on loopback."""

    username: str = Field("admin", min_length=1, description="the name to sign in with (HTTP Basic on the API)")
    password_hash: str | None = Field(
        None, description="`python -m app hash-password` prints one (scrypt, salted); the password itself is never stored"
    )
    session_hours: float = Field(12.0, gt=0, description="a sign-in (and the API session token it issues) lasts this long")
    max_failures: int = Field(5, ge=1, description="wrong passwords from one address within lockout_s before it is locked out")
    lockout_s: float = Field(300.0, gt=0, description="how long the failures are counted and the lock-out lasts")
    oidc_provider: str | None = Field(
        None, description="sign in with st.login through .streamlit/secrets.toml's [auth] block: 'default' for the "
        "block itself, or the name of an [auth.<name>] provider"
    )
    oidc_allowed: list[str] = Field(
        default_factory=list, description="e-mail addresses (alice@example.com) or domains (@example.com) that may "
        "sign in through the provider; required with oidc_provider"
    )


class RetentionSettings(BaseModel):
    """How long each kind of data is kept; 0 keeps it forever. Pruned by the collector once a day at prune_hour_utc
    and by `python -m collector prune [--dry-run]`. A queued or running job's files and a rated video are never
    removed."""

    raw_samples_days: float = Field(30.0, ge=0, description="gpu_samples, gpu_processes and host_samples day partitions")
    rollups_days: float = Field(400.0, ge=0, description="the per-minute GPU rollups (tables/gpu_minutes)")
    alert_events_days: float = Field(400.0, ge=0, description="alert_events day partitions")
    runs_days: float = Field(0.0, ge=0, description="run records (a rated job's record is kept)")
    videos_days: float = Field(0.0, ge=0, description="an ended job's files (jobs/<id>/: video, thumbnail, input) by age")
    videos_max_gb: float = Field(0.0, ge=0, description="the jobs/ directory's size: the oldest ended jobs' files go first")
    queue_days: float = Field(0.0, ge=0, description="queue rows (and their events) of ended jobs")
    logs_days: float = Field(30.0, ge=0, description="rotated log backups and logs not written to for this long")
    compile_cache_days: float = Field(30.0, ge=0, description="compile-cache/ files not used for this long")
    prune_hour_utc: int = Field(4, ge=0, le=23, description="the hour (UTC) of the collector's daily prune")


class LogSettings(BaseModel):
    """The supervisor's child logs (logs/<process>.log): rotated by size, a bounded number of backups kept."""

    max_mb: float = Field(20.0, gt=0, description="a log is rotated when it reaches this size")
    backups: int = Field(5, ge=0, description="rotated files kept: <name>.log.1 (newest) to <name>.log.<backups>")


def _toml_file() -> Path | None:
    explicit = os.environ.get("I2VMON_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "i2vmon.toml", CHECKOUT_DIR / "i2vmon.toml"):
        if candidate.is_file():
            return candidate
    return None


class Settings(BaseSettings):
    data_dir: Path = DEFAULT_DATA_DIR
    hostname: str = Field(default_factory=socket.gethostname)
    queue_url: str = Field("", description="empty: SQLite in the data directory")
    collector: CollectorSettings = CollectorSettings()
    engine: EngineSettings = EngineSettings()
    quality: QualitySettings = QualitySettings()
    app: AppSettings = AppSettings()
    api: ApiSettings = ApiSettings()
    alerts: AlertSettings = AlertSettings()
    notifications: NotificationSettings = NotificationSettings()
    regressions: RegressionSettings = RegressionSettings()
    auth: AuthSettings = AuthSettings()
    retention: RetentionSettings = RetentionSettings()
    logs: LogSettings = LogSettings()

    model_config = SettingsConfigDict(env_prefix="I2VMON_", env_nested_delimiter="__", extra="ignore")

    @field_validator("hostname")
    @classmethod
    def _safe_hostname(cls, value: str) -> str:
        # The hostname becomes a directory name in the Parquet layout.
        cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in value)
        return cleaned or "localhost"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _toml_file()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


def settings_source() -> tuple:
    """What the settings are read from — the I2VMON_* environment, the settings file and its modification
    time — so a long-running reader can tell when reading them again would give something new."""
    path = _toml_file()
    try:
        modified = path.stat().st_mtime_ns if path is not None else None
    except OSError:
        modified = None
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("I2VMON_")))
    return env, str(path) if path else None, modified


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise a clear error when the TOML file is malformed."""
    toml_path = _toml_file()
    if toml_path is not None and not toml_path.is_file():
        raise FileNotFoundError(f"settings file {toml_path} (from I2VMON_CONFIG) does not exist")
    # A misspelt key would otherwise be dropped without a word (config/unknown_keys.py).
    check_toml(Settings, toml_path)
    check_environment(Settings, "I2VMON_", "__", not_settings=("I2VMON_CONFIG",))
    return Settings(**overrides)
