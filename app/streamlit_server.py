"""How the Streamlit server is started: its one list of options, for the launcher and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

UI_SCRIPT = Path(__file__).resolve().parent / "ui.py"
CHECKOUT = UI_SCRIPT.parents[1]

OPTIONS = (
    "--server.headless", "true",
    "--browser.gatherUsageStats", "false",
    "--server.fileWatcherType", "none",
    # Streamlit guesses "development mode" when it is not under a site-packages folder (a `pip --target`
    # install) and then refuses --server.port.
    "--global.developmentMode", "false",
    # Streamlit forces a full gc.collect(2) after every script and fragment run. With pandas, pyarrow, duckdb
    # and plotly loaded that was 38% of the server's CPU with 5 sessions (py-spy, BENCHMARKS.md); Python's
    # own generational collection still runs.
    "--runner.postScriptGC", "false",
    # No "Deploy" button in the header: this app is served by `python -m app`, not Streamlit Community Cloud.
    "--client.toolbarMode", "minimal",
    # The upload box's own limit (MB) as the engine's (EngineSettings.max_image_bytes, 50 MiB): the box said 200.
    "--server.maxUploadSize", "50",
    # Generate passes each number input its session value as `value=` on purpose (the browser then draws it at
    # once, not the widget's default first): not the mistake this warning guards against.
    "--global.disableWidgetStateDuplicationWarning", "true",
)


def streamlit_run_args(port: int, host: str = "127.0.0.1") -> list[str]:
    """`python -m` arguments that serve the app on `host`:`port` (loopback unless told: app/access.py)."""
    return ["streamlit", "run", str(UI_SCRIPT), "--server.port", str(port), "--server.address", host, *OPTIONS]


def streamlit_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment additions: the checkout first on PYTHONPATH, so that app/ui.py and every page
    under pages/ import the repository's packages (Streamlit puts only the script's own folder on the path)."""
    inherited = (os.environ if environ is None else environ).get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(CHECKOUT), *([inherited] if inherited else [])])}
