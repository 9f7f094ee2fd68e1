"""Local detection: hard rules per asset profile (and, when a model is installed, its anomaly score),
turned into alert events with a lifecycle (open → update → clear)."""
