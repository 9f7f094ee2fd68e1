"""The time-series store: the InfluxDB client, line protocol, raw readings, chart series and per-sensor reports."""
