"""The anomaly models: `runtime` (edge-safe, numpy only: features, manifests, the TFLite wrapper) and `training`
(torch: datasets, training, int8 export, evaluation against the simulator)."""
