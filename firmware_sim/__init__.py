"""Sensor and cold-space simulator emitting Ruuvi RAWv2 frames over UDP (coldwatch-sim)."""
