"""The studio's web side, beside the core: the FastAPI server (`server`), its routes (`routes/`,
one router per resource), the polling fast path in front of them (`fast_path`), login (`auth`),
the Gradio studio (`ui/`), and the URL and path helpers they share (`urls`). It reads and
changes batches only through `heygem_core.jobs`; it never imports the render stack."""
