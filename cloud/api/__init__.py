"""FastAPI application: the JSON API (`routes/`), its dependencies, error bodies and metrics; the dashboard
is `cloud.ui`."""
