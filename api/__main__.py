"""`python -m api [--host H] [--port P]`: serve the REST API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from api.auth import AuthConfigError
from config import load_settings
from engine.queue import QueueUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description="The i2vmon REST API and Prometheus endpoint.")
    parser.add_argument("--host", default=None, help="address to bind (default: the api.host setting, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the api.port setting, 8000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(message)s")

    try:
        settings = load_settings()
    except ValueError as exc:  # an unknown or invalid setting: its name and the fix, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings.api = settings.api.model_copy(update=overrides)
    if not 0 < settings.api.port < 65536:
        print(f"error: port {settings.api.port} must be between 1 and 65535", file=sys.stderr)
        return 2

    from api.app import create_app

    try:
        app = create_app(settings)
    except (AuthConfigError, QueueUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="info", proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
