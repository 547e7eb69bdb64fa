"""The studio's server: the FastAPI app with the Gradio studio mounted at /, its routers, login,
the batch runtime (store, queue, the worker process beside it), and the polling fast path in
front of it all, run by uvicorn.

Settings come from HEYGEM_HOST, HEYGEM_PORT, HEYGEM_WORKSPACE and the rest of config.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import gradio as gr
import uvicorn
from fastapi import FastAPI, Request

from heygem_core.config import Settings, get_settings
from heygem_core.jobs.runtime import build_runtime
from heygem_web.auth import Authenticator, AuthMiddleware, parse_auth
from heygem_web.errors import install_error_handlers
from heygem_web.fast_path import ProgressFastPath, polling_protocol
from heygem_web.limits import UploadLimits
from heygem_web.routes import ROUTERS
from heygem_web.ui import I18N, build_ui
from heygem_web.ui.assets import CSS, head
from heygem_web.urls import output_url

logger = logging.getLogger("heygem")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
VERSION = "0.3.0"
FORM_FIELDS = 8  # non-file fields an upload request may carry (engine, mode, ...)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application with the batch runtime (store, queue, the worker beside it)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings, output_url=output_url)
        app.state.runtime = runtime
        runtime.spawn_worker(settings.inprocess_workers)
        runtime.start_deliveries()
        runtime.speed.warm()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(title="HeyGem batch lip-sync", version=VERSION, lifespan=lifespan)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(UploadLimits, request_limit=settings.max_request_bytes,
                       part_limit=settings.max_upload_bytes, max_parts=max_parts(settings))
    authenticator = Authenticator.from_settings(settings)
    app.state.authenticator = authenticator
    if authenticator.enabled:
        app.add_middleware(AuthMiddleware, authenticator=authenticator)
    blocks = build_ui(lambda: app.state.runtime, settings)
    return gr.mount_gradio_app(app, blocks, path="/", css=CSS, head=head(), footer_links=[], i18n=I18N,
                               max_file_size=settings.max_upload_bytes,
                               auth_dependency=_request_user if authenticator.enabled else None)


def max_parts(settings: Settings) -> int:
    """The most parts an upload request may have: a full batch of videos and of audios, and its
    form fields."""
    return 2 * settings.max_batch_items + FORM_FIELDS


def create_server_app(settings: Settings | None = None) -> ProgressFastPath:
    """What the server runs: `create_app` behind the polling fast path."""
    app = create_app(settings)
    return ProgressFastPath(app, app.state.authenticator)


def _request_user(request: Request) -> str | None:
    """The user the auth middleware put on the request (the UI's login is the same as the API's)."""
    return getattr(request.state, "user", None)


def main() -> None:
    """Start the server on HEYGEM_HOST:HEYGEM_PORT (127.0.0.1:7860 by default)."""
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.host not in LOOPBACK and not parse_auth(settings.auth):
        message = (f"WARNING: listening on {settings.host} without login: anyone on the network can "
                   "use this server. Set HEYGEM_AUTH=user:password to require a login.")
        logger.warning(message)
        print(message, flush=True)
    print(f"HeyGem is running at http://{settings.host}:{settings.port}/  (API docs: /docs, "
          f"live log: {settings.log_file})", flush=True)
    app = create_server_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", http=polling_protocol(app))
