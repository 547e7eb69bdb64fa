"""The studio's server: `python app.py` serves the API (and, from the UI issue on, the Gradio UI).

For now it answers health and engine questions; batches, progress and the browser UI come with
the jobs and UI work. Settings come from HEYGEM_HOST, HEYGEM_PORT and HEYGEM_WORKSPACE."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from heygem_core.config import Settings, get_settings
from heygem_core.engines import engine_statuses

logger = logging.getLogger("heygem")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application."""
    settings = settings or get_settings()
    app = FastAPI(title="HeyGem batch lip-sync", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "workspace": str(settings.workspace)}

    @app.get("/api/engines")
    def engines() -> list[dict[str, object]]:
        return [s.__dict__ for s in engine_statuses(settings)]

    return app


def main() -> None:
    """Start the server on HEYGEM_HOST:HEYGEM_PORT (127.0.0.1:7860 by default)."""
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.workspace.mkdir(parents=True, exist_ok=True)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: anyone on the network can reach this server", settings.host)
    print(f"HeyGem is running at http://{settings.host}:{settings.port}/  (API docs: /docs)", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
