"""FastAPI application: JSON API and (later) the dashboard."""
