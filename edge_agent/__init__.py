"""coldwatch-agent: the gateway daemon (inputs → decode → outbox → MQTT publisher)."""

__version__ = "0.1.0"
