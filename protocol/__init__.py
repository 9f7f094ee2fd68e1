"""coldwatch wire contracts: MQTT topics, payload schemas and codec, Ruuvi RAWv2 frames.

Edge and cloud both import from here and never from each other. Public surface:
"""

from protocol.codec import ProtocolError, decode, encode
from protocol.datagram import Datagram, DatagramError, pack_datagram, unpack_datagram
from protocol.messages import (
    SCHEMA_VERSION,
    AlertEvent,
    Desired,
    DesiredModel,
    Reading,
    Reported,
    Status,
    TelemetryBatch,
)
from protocol.ruuvi import FrameError, RuuviFrame, decode_rawv2, encode_rawv2
from protocol.topics import TopicError, parse_topic, topic

__all__ = [
    "SCHEMA_VERSION",
    "AlertEvent",
    "Datagram",
    "DatagramError",
    "Desired",
    "DesiredModel",
    "FrameError",
    "ProtocolError",
    "Reading",
    "Reported",
    "RuuviFrame",
    "Status",
    "TelemetryBatch",
    "TopicError",
    "decode",
    "decode_rawv2",
    "encode",
    "encode_rawv2",
    "pack_datagram",
    "parse_topic",
    "topic",
    "unpack_datagram",
]
