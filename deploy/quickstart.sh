#!/usr/bin/env bash
# A local fleet on this machine: installs, builds, generates keys, starts mosquitto, the control
# plane and three edged devices from deploy/examples/fleet, waits until they have all applied
# their bundles (edge-1 and edge-2 with a software TPM have attested) and prints the device table.
#   deploy/quickstart.sh           start and leave it running
#   deploy/quickstart.sh --check   start, exit 0 once converged (non-zero on timeout), stop all
#   deploy/quickstart.sh --stop    stop what an earlier run left running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUN="${EDGE_RUN_DIR:-$ROOT/.run}"
BIN="$ROOT/${EDGE_BUILD_DIR:-build}/bin"
MODE="${1:-run}"

stop_all() {
  [ -f "$RUN/pids" ] || return 0
  # Devices and control plane first (they say goodbye to the broker), the broker last.
  local pids
  pids=$(tac "$RUN/pids")
  for pid in $pids; do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$RUN/pids"
}

case "$MODE" in
  --stop) stop_all; echo "stopped"; exit 0 ;;
  run|--check) ;;
  *) echo "usage: $0 [--check|--stop]" >&2; exit 2 ;;
esac

deploy/install-deps.sh
EDGE_TARGETS="controlplane edged edgectl" deploy/build.sh
stop_all

# Ports below the kernel's ephemeral range: an outgoing connection's local port (which nothing
# listens on, yet cannot be bound) never takes one of them.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 21000 ] 2>/dev/null || EPHEMERAL_LOW=60000
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % (EPHEMERAL_LOW - 20002) ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

mkdir -p "$RUN/logs"
: > "$RUN/pids"
[ -f "$RUN/keys/trust-root.json" ] || "$BIN/controlplane" keygen --dir "$RUN/keys" >/dev/null
[ -d "$RUN/fleet" ] || cp -r deploy/examples/fleet "$RUN/fleet"

BROKER_PORT=$(free_port)
HTTP_PORT=$(free_port)
cat > "$RUN/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
user $(id -un)
log_dest file $RUN/logs/mosquitto.log
CONF
/usr/sbin/mosquitto -c "$RUN/mosquitto.conf" >/dev/null 2>&1 &
echo $! >> "$RUN/pids"

cat > "$RUN/controlplane.yaml" <<CONF
fleet_dir: fleet
state_dir: state/controlplane
broker: tcp://127.0.0.1:$BROKER_PORT
signing_keys: [keys/targets-1.key.pem]
bundle_ttl: 7d
http:
  listen: 127.0.0.1:$HTTP_PORT
CONF
"$BIN/controlplane" run --config "$RUN/controlplane.yaml" >>"$RUN/logs/controlplane.log" 2>&1 &
echo $! >> "$RUN/pids"

# edge-1 and edge-2 get a software TPM (swtpm) and attest; edge-3 has none and stays unenrolled.
tpm_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(free_port)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
for dev in edge-1 edge-2 edge-3; do
  cat > "$RUN/$dev.yaml" <<CONF
device_id: $dev
broker: tcp://127.0.0.1:$BROKER_PORT
trust_root: keys/trust-root.json
state_dir: state/$dev
CONF
  if [ "$dev" != "edge-3" ]; then
    TPM_PORT=$(tpm_port)
    mkdir -p "$RUN/tpm/$dev"
    swtpm socket --tpm2 --server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$RUN/tpm/$dev" \
      --flags not-need-init,startup-clear >>"$RUN/logs/swtpm-$dev.log" 2>&1 &
    echo $! >> "$RUN/pids"
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$TPM_PORT") 2>/dev/null && break; sleep 0.1; done
    # Each run ends by killing swtpm without a TPM2_Shutdown, as a power cut would; the TPM counts
    # such restarts towards its dictionary-attack lockout. This is a development TPM whose
    # lockout authorization is empty: clear it, so that repeated runs keep working.
    tpm2_dictionarylockout --clear-lockout -T "swtpm:host=127.0.0.1,port=$TPM_PORT" \
      >>"$RUN/logs/swtpm-$dev.log" 2>&1 || echo "quickstart: could not clear $dev's TPM lockout" >&2
    printf 'tpm:\n  tcti: swtpm:host=127.0.0.1,port=%s\n' "$TPM_PORT" >> "$RUN/$dev.yaml"
  fi
  "$BIN/edged" run --config "$RUN/$dev.yaml" >>"$RUN/logs/$dev.log" 2>&1 &
  echo $! >> "$RUN/pids"
done

export EDGECTL_SERVER="http://127.0.0.1:$HTTP_PORT"
echo "$EDGECTL_SERVER" > "$RUN/server"
if ! "$BIN/edgectl" wait --timeout "${EDGE_QUICKSTART_TIMEOUT:-90}"; then
  echo "quickstart: the fleet did not converge; logs in $RUN/logs" >&2
  "$BIN/edgectl" devices >&2 || true
  [ "$MODE" = "--check" ] && stop_all
  exit 1
fi
# The devices with a TPM enrolled their attestation key and answered a fresh challenge.
for dev in edge-1 edge-2; do
  if ! "$BIN/edgectl" attest "$dev" --timeout 30 >/dev/null; then
    echo "quickstart: $dev did not attest; logs in $RUN/logs" >&2
    "$BIN/edgectl" devices >&2 || true
    [ "$MODE" = "--check" ] && stop_all
    exit 1
  fi
done
"$BIN/edgectl" devices

if [ "$MODE" = "--check" ]; then
  stop_all
  echo "quickstart: converged; stopped"
  exit 0
fi
cat <<HINT

Running (logs in $RUN/logs). Change the fleet in $RUN/fleet, then:
  EDGECTL_SERVER=$EDGECTL_SERVER $BIN/edgectl reload && EDGECTL_SERVER=$EDGECTL_SERVER $BIN/edgectl wait && EDGECTL_SERVER=$EDGECTL_SERVER $BIN/edgectl devices
Device state without the network: $BIN/edged status --config $RUN/edge-1.yaml
Attest a device now: EDGECTL_SERVER=$EDGECTL_SERVER $BIN/edgectl attest edge-1
Stop everything: deploy/quickstart.sh --stop
HINT
