"""What a gateway runs of a model, numpy only: window features, the signed manifest, the TFLite wrapper, the
pull-down ratio and alert episodes. Imports neither torch nor the simulator (an import-linter contract)."""
