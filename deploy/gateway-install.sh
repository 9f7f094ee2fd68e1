#!/usr/bin/env bash
# Install coldwatch-agent on a Debian-based gateway: system user, directories, config, fleet public key,
# TLS material, the MQTT password (root-only env file), a venv with coldwatch[edge], the kernel's socket-buffer cap
# for the udp input (sysctl.d), the systemd unit.
# Idempotent: an existing agent.toml or agent.env is kept (pass --force to rewrite them). docs/deploy.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: gateway-install.sh --gateway-id ID --broker HOST[:PORT] --ca FILE --cert FILE --key FILE
                          --fleet-key FILE [--token-file FILE --api-url URL] [--password-file FILE]
                          [--input udp:HOST:PORT | --input ble] [--root DIR] [--no-pip] [--no-systemd]
                          [--pip-spec SPEC] [--agent-bin PATH] [--force]
  --gateway-id     the gateway's id (= its MQTT user name): 1-64 of a-z 0-9 - _
  --broker         the broker's TLS listener (default port 8883)
  --ca/--cert/--key  fleet CA, this gateway's client certificate and key (from provisioning)
  --fleet-key      the fleet's Ed25519 public key (models are refused unless signed by it); repeat during a rotation
  --token-file     bearer token for model downloads (from provisioning)
  --api-url        the cloud API's origin (https://host[:port]): models are fetched, and the token sent, only there
  --password-file  file holding the MQTT password (else $COLDWATCH_GATEWAY_PASSWORD)
  --input          udp:127.0.0.1:9999 (default: a BLE-to-UDP bridge or the simulator) or ble (needs coldwatch[ble])
  --root           install under DIR instead of / (images, tests); no user is created there
  --no-pip         do not create /opt/coldwatch (the agent is installed another way)
  --no-systemd     do not install or start the unit
  --pip-spec       what pip installs into /opt/coldwatch (default coldwatch[edge])
  --agent-bin      coldwatch-agent used to validate the config (default /opt/coldwatch/bin/coldwatch-agent)
TXT
}

die() { echo "gateway-install: $*" >&2; exit 2; }

gateway="" broker="" ca="" cert="" key="" token="" api_url="" password_file="" input="udp:127.0.0.1:9999"
root="/" pip=1 systemd=1 force=0 pip_spec="coldwatch[edge]" agent_bin=""
fleet_keys=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gateway-id) gateway="${2:-}"; shift 2 ;;
    --broker) broker="${2:-}"; shift 2 ;;
    --ca) ca="${2:-}"; shift 2 ;;
    --cert) cert="${2:-}"; shift 2 ;;
    --key) key="${2:-}"; shift 2 ;;
    --fleet-key) fleet_keys+=("${2:-}"); shift 2 ;;
    --token-file) token="${2:-}"; shift 2 ;;
    --api-url) api_url="${2:-}"; shift 2 ;;
    --password-file) password_file="${2:-}"; shift 2 ;;
    --input) input="${2:-}"; shift 2 ;;
    --root) root="${2:-}"; shift 2 ;;
    --no-pip) pip=0; shift ;;
    --no-systemd) systemd=0; shift ;;
    --pip-spec) pip_spec="${2:-}"; shift 2 ;;
    --agent-bin) agent_bin="${2:-}"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ "$gateway" =~ ^[a-z0-9][a-z0-9_-]{0,63}$ ]] || die "--gateway-id: '$gateway' is not 1-64 of a-z 0-9 - _ (starting with a letter or digit)"
[ -n "$broker" ] || die "--broker: required (HOST or HOST:PORT of the broker's TLS listener)"
host="${broker%%:*}"; port="8883"; [[ "$broker" == *:* ]] && port="${broker##*:}"
[[ "$port" =~ ^[0-9]+$ ]] || die "--broker: port '$port' is not a number"
for pair in "ca:$ca" "cert:$cert" "key:$key"; do
  [ -r "${pair#*:}" ] || die "--${pair%%:*}: '${pair#*:}' is not a readable file"
done
[ ${#fleet_keys[@]} -gt 0 ] || die "--fleet-key: required (without it the gateway refuses every model)"
for k in "${fleet_keys[@]}"; do [ -r "$k" ] || die "--fleet-key: '$k' is not a readable file"; done
[ -z "$token" ] || [ -r "$token" ] || die "--token-file: '$token' is not a readable file"
[ -z "$token" ] || [ -n "$api_url" ] || die "--api-url: required with --token-file (the token is sent only to that origin)"
[ -z "$api_url" ] || [[ "$api_url" =~ ^https?://[A-Za-z0-9.:-]+/?$ ]] || die "--api-url: '$api_url' is not an origin like https://cloud.example:8443"
password="${COLDWATCH_GATEWAY_PASSWORD:-}"
if [ -n "$password_file" ]; then
  [ -r "$password_file" ] || die "--password-file: '$password_file' is not a readable file"
  password="$(head -n 1 "$password_file")"
fi
[ -n "$password" ] || die "no MQTT password: pass --password-file or set COLDWATCH_GATEWAY_PASSWORD"
case "$input" in
  udp:*) input_toml=$'type = "udp"\nbind = "'"${input#udp:}"'"' ;;
  ble) input_toml='type = "ble"' ;;
  *) die "--input: '$input' is not udp:HOST:PORT or ble" ;;
esac

root="${root%/}"
etc="$root/etc/coldwatch" state="$root/var/lib/coldwatch" opt="$root/opt/coldwatch"
owner="root:root"
if [ -z "$root" ]; then  # the real system: a user for the daemon
  id coldwatch >/dev/null 2>&1 || useradd --system --home /var/lib/coldwatch --shell /usr/sbin/nologin coldwatch
  owner="root:coldwatch"
fi
step() { echo "==> $*"; }

step "directories $etc, $state"
install -d -m 0750 "$etc" "$etc/tls" "$state"
[ -z "$root" ] && chown "$owner" "$etc" "$etc/tls" && chown coldwatch:coldwatch "$state"

step "TLS material and fleet key(s)"
install -m 0644 "$ca" "$etc/tls/ca.crt"
install -m 0644 "$cert" "$etc/tls/gateway.crt"
install -m 0640 "$key" "$etc/tls/gateway.key"
keys_toml=""
for i in "${!fleet_keys[@]}"; do
  install -m 0644 "${fleet_keys[$i]}" "$etc/fleet-$i.pub"
  keys_toml+="\"/etc/coldwatch/fleet-$i.pub\", "
done
token_toml="# token_file = \"/etc/coldwatch/gateway.token\""
if [ -n "$token" ]; then
  install -m 0640 "$token" "$etc/gateway.token"
  token_toml="token_file = \"/etc/coldwatch/gateway.token\""$'\n'"api_url = \"$api_url\""
fi
[ -z "$root" ] && chown "$owner" "$etc/tls/gateway.key" "$etc"/*.pub && { [ -z "$token" ] || chown "$owner" "$etc/gateway.token"; }

if [ ! -e "$etc/agent.toml" ] || [ "$force" = 1 ]; then
  step "config $etc/agent.toml"
  cat > "$etc/agent.toml.new" <<TOML
# coldwatch-agent for $gateway, written by deploy/gateway-install.sh; every key: docs/edge-agent.md
gateway_id = "$gateway"

[mqtt]
host = "$host"
port = $port
# the password comes from COLDWATCH_AGENT_MQTT__PASSWORD in /etc/coldwatch/agent.env

[mqtt.tls]
ca = "/etc/coldwatch/tls/ca.crt"
cert = "/etc/coldwatch/tls/gateway.crt"
key = "/etc/coldwatch/tls/gateway.key"

[[inputs]]
$input_toml

[outbox]
path = "/var/lib/coldwatch/outbox.sqlite"

[updater]
public_keys = [${keys_toml%, }]
$token_toml
TOML
  chmod 0640 "$etc/agent.toml.new"
  mv "$etc/agent.toml.new" "$etc/agent.toml"
else
  step "config $etc/agent.toml exists, kept (--force rewrites it)"
fi
if [ ! -e "$etc/agent.env" ] || [ "$force" = 1 ]; then
  step "secret $etc/agent.env (root only)"
  umask 077
  printf 'COLDWATCH_AGENT_MQTT__PASSWORD=%s\n' "$password" > "$etc/agent.env.new"
  chmod 0600 "$etc/agent.env.new"
  mv "$etc/agent.env.new" "$etc/agent.env"
fi
[ -z "$root" ] && chown "$owner" "$etc/agent.toml"

if [ "$pip" = 1 ]; then
  step "venv $opt ($pip_spec)"
  [ -x "$opt/bin/python" ] || python3 -m venv "$opt"
  "$opt/bin/pip" install -q --upgrade "$pip_spec"
fi

agent_bin="${agent_bin:-$opt/bin/coldwatch-agent}"
if [ -x "$agent_bin" ]; then
  step "validating the config"
  # Paths in the file are the gateway's own; under --root, check a copy with them rewritten.
  check="$etc/agent.toml"
  if [ -n "$root" ]; then
    check="$state/agent.check.toml"
    sed -e "s#\"/etc/coldwatch#\"$etc#g" -e "s#\"/var/lib/coldwatch#\"$state#g" "$etc/agent.toml" > "$check"
  fi
  COLDWATCH_AGENT_MQTT__PASSWORD="$password" "$agent_bin" check-config --config "$check"
  [ -n "$root" ] && rm -f "$check"
fi

# The udp input asks for an 8 MiB socket buffer (edge_agent/inputs/udp.py RCVBUF_BYTES) to hold a burst of
# frames while the agent works through it; stock Debian caps every socket at 212,992 bytes (net.core.rmem_max).
step "kernel: net.core.rmem_max for the udp input's socket buffer"
install -d "$root/etc/sysctl.d"
printf '# coldwatch-agent: the udp input socket buffer (a burst of frames waits there)\nnet.core.rmem_max = 8388608\n' \
  > "$root/etc/sysctl.d/90-coldwatch-agent.conf"
if [ -z "$root" ]; then
  sysctl -q -p "/etc/sysctl.d/90-coldwatch-agent.conf" \
    || echo "gateway-install: warning: net.core.rmem_max not set now (applied at the next boot)" >&2
fi

if [ "$systemd" = 1 ]; then
  step "systemd unit coldwatch-agent.service"
  here="$(cd "$(dirname "$0")" && pwd)"
  install -d "$root/etc/systemd/system"
  install -m 0644 "$here/systemd/coldwatch-agent.service" "$root/etc/systemd/system/coldwatch-agent.service"
  # COLDWATCH_SYSTEMCTL stands in for systemctl (tests run the installer under --root with a recording stub).
  if [ -z "$root" ] || [ -n "${COLDWATCH_SYSTEMCTL:-}" ]; then
    sysctl="${COLDWATCH_SYSTEMCTL:-systemctl}"
    "$sysctl" daemon-reload
    "$sysctl" enable coldwatch-agent.service
    if "$sysctl" is-active --quiet coldwatch-agent.service; then
      # An upgrade: `enable --now` would leave the old code running. A restart stops it gracefully (SIGTERM: the
      # outbox is drained for drain_timeout_s; whatever is not acknowledged stays in $state/outbox.sqlite, which
      # the installer never touches) and starts the new package with the current config.
      step "restarting the running agent (new package or config)"
      "$sysctl" restart coldwatch-agent.service
    else
      "$sysctl" start coldwatch-agent.service
    fi
  fi
fi
step "done: gateway $gateway -> $host:$port"
