#!/usr/bin/env bash
# InfluxDB 2.x first start: map database "coldwatch" / retention policy "autogen" to the bucket, so that the
# 1.x API coldwatch speaks (/write?db=coldwatch, /query) reaches it. Token auth: Authorization: Token <token>.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | awk '{print $1}')
influx v1 dbrp create --db coldwatch --rp autogen --bucket-id "${bucket_id}" --default
