"""Cloud side: ingest worker, InfluxDB adapter, API (coldwatch)."""
