#!/usr/bin/env bash
# Install the Debian packages coldwatch runs against (mosquitto, influxdb, postgresql, chromium, a CJK font for the
# PDF reports) when missing. Idempotent.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v influxd >/dev/null || missing+=(influxdb)
# PostgreSQL's server binaries are not on PATH on Debian: /usr/lib/postgresql/<ver>/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# The dashboard's browser tests drive Debian's headless Chromium (no browser download).
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
# The PDF reports' font: Latin and Chinese in one face (cloud/report_pdf.py UNICODE_FONTS), 1.6 MB.
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "==> installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The packages' own services are not started (no init here); our fixtures and demo start them.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> installed ${missing[*]}"
