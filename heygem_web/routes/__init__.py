"""The API's routers, one per resource; `ROUTERS` is what the server includes."""

from heygem_web.routes import batches, engines, health, preflight, progress, queue, token

ROUTERS = [health.router, token.router, engines.router, batches.router, queue.router, preflight.router,
           progress.router]
