"""The staff dashboard: server-rendered pages (Jinja2), live alerts over server-sent events, own chart code.

`install_ui(app)` adds the pages, the event stream and the static files to the API app.
"""

from __future__ import annotations

from cloud.ui.pages import install_ui

__all__ = ["install_ui"]
