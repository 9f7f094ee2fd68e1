"""MQTT → InfluxDB ingest worker."""
