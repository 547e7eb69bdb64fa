"""The studio in the browser: the Gradio page (`studio`), its words (`text`), the HTML of its
panels (`panels`) and its own CSS and script (`assets`)."""

from heygem_web.ui.studio import I18N, build_ui

__all__ = ["I18N", "build_ui"]
