"""coldwatch-agent: the gateway daemon (inputs → decode → outbox → MQTT publisher)."""

__version__ = "0.2.0"
