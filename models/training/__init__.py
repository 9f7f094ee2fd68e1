"""Training the anomaly models with torch: datasets (simulator and CSV), training, int8 export, evaluation, the
`coldwatch models` commands. Cloud-side only; the gateway never imports it (an import-linter contract)."""
