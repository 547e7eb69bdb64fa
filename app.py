"""The studio's entry point: `python app.py` serves the Gradio studio at /, the REST/SSE/WebSocket
API, and starts the worker beside it. The server itself is `heygem_web.server`."""

from heygem_web.server import create_app, create_server_app, main

__all__ = ["create_app", "create_server_app", "main"]

if __name__ == "__main__":
    main()
