"""The staff dashboard: server-rendered pages (Jinja2), live alerts over server-sent events, own chart code.

`cloud.ui.install.install_ui(app)` adds the pages, the event stream and the static files to the API app.
"""
