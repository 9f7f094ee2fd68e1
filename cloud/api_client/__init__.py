"""A typed client of coldwatch's own HTTP API (`client.OpsClient`, decoding into `responses`), used by the ops
commands, the training worker, the demo and the bench."""
