"""Data access and domain rules (keyword-only functions taking a Session); routes and ingest call these."""
