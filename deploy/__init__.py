"""Deployment assets and the local stack (mosquitto, influxd) used by the demo, tests and bench."""
