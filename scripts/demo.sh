#!/usr/bin/env bash
# The agentroot demo on embedded defaults, with the real pieces, narrated.
#
# This script owns the processes and the files; agentroot-demo (the C++
# narrator, simulators/src/demo_main.cc) plays the operators and the attacker
# and checks every outcome.
#
# 1. Two simulated machines (agentroot-sim: one swtpm each, EK certificates
#    from a local "TPM manufacturer" CA); a throwaway TLS PKI (openssl: a CA,
#    TLS certificates for the verifier and the CRM API); the operator CA and
#    the credentials of four operators, made with the agentroot CLI
#    (`operator ca-init`, `operator issue`); a SoftHSM2 token created in the
#    demo directory for the issuer key; agentroot-verifier (SQLite, issuer key
#    in that token, one bootstrap operator: carol, infra), who registers the
#    other operators with `agentroot operator add`; one CLI config file per
#    operator; agentroot-resource-demo (the CRM API); agentroot-hostd on
#    machine-0 with one agent manifest, sales-bot, naming a COPY of
#    agentroot-example-agent.
# 2-9. agentroot-demo narrates, every operator step an `agentroot` command:
#    enrollment and governance, the agent's token, a shadow agent, the stolen
#    token on machine-1, a JIT elevation, the changed binary, the inventory,
#    the summary from the audit log (exported and verified with the CLI) and
#    the API's decision log.
# Last. Every process is stopped (also on failure or Ctrl-C) and the demo
#    directory removed. Exit status: 0 when every step behaved as expected.
#
# Usage: scripts/demo.sh [BUILD_DIR]   (default: build)
#        AGENTROOT_DEMO_KEEP=1 keeps the demo directory (logs) after the run.
set -euo pipefail

BUILD_DIR="$(cd "${1:-build}" && pwd)"
BIN="$BUILD_DIR/bin"
SIM="$BIN/agentroot-sim"
for bin in agentroot agentroot-sim agentroot-verifier agentroot-demo agentroot-hostd agentroot-token \
           agentroot-example-agent agentroot-resource-demo; do
  [[ -x "$BIN/$bin" ]] || { echo "demo: $BIN/$bin not built; run 'make demo'" >&2; exit 1; }
done
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
[[ -r "$SOFTHSM_MODULE" ]] && command -v softhsm2-util >/dev/null \
  || { echo "demo: SoftHSM2 is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

if [[ -t 1 ]]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi
say() { printf '   %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
indent() { sed 's/^/     /'; }

STARTED=$SECONDS
DEMO_DIR="$(mktemp -d /tmp/agentroot-demo.XXXXXX)"
chmod 700 "$DEMO_DIR"
declare -A PIDS=()   # name -> pid of every long-running process we started

STOP_RC=0
stop() {  # stop NAME: SIGTERM, wait up to 10 s, then SIGKILL; its exit status in STOP_RC
  local name=$1 pid=${PIDS[$1]:-} rc=0
  STOP_RC=0
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  unset "PIDS[$name]"
  STOP_RC=$rc
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for name in hostd resource verifier; do stop "$name"; done
  "$SIM" tpm stop --dir "$DEMO_DIR" >/dev/null 2>&1 || true
  if [[ $rc -ne 0 ]]; then
    for log in verifier hostd resource; do
      [[ -s "$DEMO_DIR/$log.log" ]] || continue
      echo "demo: last lines of $log.log:" >&2
      tail -n 8 "$DEMO_DIR/$log.log" | cut -c1-400 | sed 's/^/   /' >&2
    done
  fi
  if [[ -n "${AGENTROOT_DEMO_KEEP:-}" ]]; then
    echo "demo: kept $DEMO_DIR" >&2
  else
    rm -rf "$DEMO_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for WHAT SECONDS PID COMMAND...: until COMMAND succeeds, PID dies, or time runs out.
wait_for() {
  local what=$1 seconds=$2 pid=$3
  shift 3
  for _ in $(seq 1 $((seconds * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited while starting"
    sleep 0.1
  done
  die "$what did not come up within $seconds s"
}

step "1. Start two simulated machines, the verifier (issuer key in a SoftHSM2 token) and a CRM API"
"$SIM" tpm start --machines 2 --dir "$DEMO_DIR" > "$DEMO_DIR/fleet-out.json"
FLEET="$DEMO_DIR/fleet.json"
python3 - "$DEMO_DIR/fleet-out.json" <<'PY'
import json, sys
fleet = json.load(open(sys.argv[1]))
for m in fleet["machines"]:
    print(f"   {m['name']}: its own swtpm (pid {m['pid']}, TCTI {m['tcti']}), EK certificate from the manufacturer CA")
PY
fleet_field() { python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$FLEET" "$1"; }
MANUFACTURER_CA="$(fleet_field 'f["manufacturer_ca"]')"
MANUFACTURER_INTERMEDIATE="$(fleet_field 'f.get("manufacturer_intermediate", "")')"
TCTI0="$(fleet_field 'f["machines"][0]["tcti"]')"
MACHINE0="$(fleet_field 'f["machines"][0]["name"]')"

# A throwaway TLS PKI (openssl): the verifier's and the API's server certificates.
PKI="$DEMO_DIR/pki"
mkdir -m 700 "$PKI"
cat > "$PKI/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${newkey[@]}" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 1 \
  -subj "/O=agentroot demo/CN=agentroot demo TLS CA" -config "$PKI/openssl.cnf" -extensions ca 2>/dev/null
issue() {  # issue NAME SUBJECT EXTENSIONS
  openssl req -new "${newkey[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2" \
    -config "$PKI/openssl.cnf" 2>/dev/null
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -days 1 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$PKI/openssl.cnf" -extensions "$3" \
    -out "$PKI/$1.crt" 2>/dev/null
  rm -f "$PKI/$1.csr"
}
issue server "/O=agentroot demo/CN=localhost" server
issue crm "/O=agentroot demo/CN=crm" server
say "TLS (openssl): a demo CA (pki/ca.crt), server certificates for the verifier and the CRM API"

# The operators' identities, made with the agentroot CLI as an infra engineer
# would on an offline machine: the operator CA, then one credential each.
# Every CLI command runs in the demo directory (relative paths) and is shown
# as typed, prompt = who types it.
AGENTROOT="$BIN/agentroot"
OPS="$DEMO_DIR/operators"
mkdir -m 700 "$OPS"
show_command() {  # show_command WHO ARGS...: prints "WHO$ agentroot ARGS" (quoted where needed)
  local who=$1 line="" arg
  shift
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_.,:/=+@-]+$ ]]; then line+=" $arg"; else line+=" \"$arg\""; fi
  done
  say "$who\$ agentroot${line}"
}
CLI_OUT=""
offline() {  # offline WHO ARGS...: an agentroot command that needs no verifier; its stdout in CLI_OUT
  local who=$1 rc=0
  shift
  show_command "$who" "$@"
  CLI_OUT="$(cd "$DEMO_DIR" && "$AGENTROOT" "$@" 2>"$DEMO_DIR/cli.err")" || rc=$?
  [[ $rc == 0 ]] || die "agentroot $1 $2 exited $rc: $(head -n1 "$DEMO_DIR/cli.err")"
}
as() {  # as WHO ARGS...: an agentroot command as operator WHO (--config operators/WHO.toml); stdout in CLI_OUT
  local who=$1 rc=0
  shift
  show_command "$who" "$@"
  CLI_OUT="$(cd "$DEMO_DIR" && "$AGENTROOT" --config "operators/$who.toml" "$@" 2>"$DEMO_DIR/cli.err")" || rc=$?
  [[ $rc == 0 ]] || die "agentroot $1 $2 as $who exited $rc: $(head -n1 "$DEMO_DIR/cli.err")"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

OPERATORS=("carol:infra:Carol Rao" "alice:owner,reviewer:Alice Doe" "bob:reviewer:Bob Roe" "audrey:auditor:Audrey Poe")
say "the operator CA and credentials (agentroot CLI; on an offline machine in real life):"
offline carol operator ca-init --dir operator-ca --name "agentroot demo operator CA" --days 2
[[ -s "$DEMO_DIR/operator-ca/ca.crt" && "$(stat -c %a "$DEMO_DIR/operator-ca/ca.key")" == 600 ]] \
  || die "operator ca-init did not write operator-ca/ca.crt and a 0600 ca.key"
declare -A FP
for entry in "${OPERATORS[@]}"; do
  name="${entry%%:*}"
  rest="${entry#*:}"
  offline carol -o json operator issue --ca-dir operator-ca --id "$name" --name "${rest#*:}" --days 1 \
    --out "operators/$name"
  FP[$name]="$(json_field certificate_sha256 <<<"$CLI_OUT")"
  [[ "${FP[$name]}" == "$(openssl x509 -in "$OPS/$name/$name.crt" -outform DER | sha256sum | cut -d' ' -f1)" ]] \
    || die "operator issue: the printed fingerprint of $name's certificate is not its SHA-256"
  say "  -> operators/$name/$name.crt (CN=$name) and $name.key (0600), certificate_sha256 ${FP[$name]:0:16}…"
done

# The issuer key lives in a SoftHSM2 token created for this run, in the demo
# directory (a private SOFTHSM2_CONF, as hsm/testing ScopedSoftHsmToken does).
mkdir -m 700 "$DEMO_DIR/softhsm" "$DEMO_DIR/softhsm/tokens"
cat > "$DEMO_DIR/softhsm/softhsm2.conf" <<CONF
directories.tokendir = $DEMO_DIR/softhsm/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$DEMO_DIR/softhsm/softhsm2.conf"
ISSUER_PIN="$(openssl rand -hex 16)"
softhsm2-util --init-token --free --label agentroot-demo --so-pin "$(openssl rand -hex 16)" \
  --pin "$ISSUER_PIN" >/dev/null
say "SoftHSM2 token 'agentroot-demo' created in the demo directory (random PINs, not printed)"

write_verifier_config() {  # write_verifier_config PORT
  cat > "$DEMO_DIR/verifier.toml" <<TOML
# Written by scripts/demo.sh for one run; see config/verifier.example.toml.
[server]
listen = "127.0.0.1:$1"
tls_certificate = "$PKI/server.crt"
tls_private_key = "$PKI/server.key"
operator_ca = "$DEMO_DIR/operator-ca/ca.crt"
inline_handlers = true
threads = 2

[verifier]
issuer = "https://127.0.0.1:$1"
trust_domain = "example.org"
manufacturer_roots = "$MANUFACTURER_CA"
auto_approve_groups = []
measurement_pcr = 15

[store]
uri = "sqlite:$DEMO_DIR/verifier.db"

[issuer_key]
backend = "pkcs11"
module = "$SOFTHSM_MODULE"
token = "agentroot-demo"
pin_env = "AGENTROOT_ISSUER_PIN"
key_id = "issuer-1"
TOML
  # Only carol (infra) is bootstrapped; she registers the others with the CLI.
  cat >> "$DEMO_DIR/verifier.toml" <<TOML

[[bootstrap_operators]]
id = "carol"
name = "Carol (infra)"
roles = ["infra"]
certificate_sha256 = "${FP[carol]}"
TOML
}
jwks_ready() {  # jwks_ready PORT
  python3 - "$1" "$PKI/ca.crt" <<'PY'
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(f"https://127.0.0.1:{sys.argv[1]}/.well-known/jwks.json", context=ctx, timeout=2) as r:
    json.load(r)["keys"][0]
PY
}
# The issuer URL names the port, so the port is chosen before the start.
PORT=""
for _ in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 40000))
  write_verifier_config "$candidate"
  : > "$DEMO_DIR/verifier.log"
  AGENTROOT_ISSUER_PIN="$ISSUER_PIN" TSS2_LOG=all+NONE \
    "$BIN/agentroot-verifier" --config "$DEMO_DIR/verifier.toml" 2>>"$DEMO_DIR/verifier.log" &
  PIDS[verifier]=$!
  for _ in $(seq 1 100); do
    if jwks_ready "$candidate" 2>/dev/null; then PORT=$candidate; break; fi
    kill -0 "${PIDS[verifier]}" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$PORT" ]] && break
  kill -0 "${PIDS[verifier]}" 2>/dev/null && die "the verifier did not answer on port $candidate within 10 s"
  stop verifier
  grep -qi "in use" "$DEMO_DIR/verifier.log" || die "the verifier did not start"
  say "port $candidate is taken; trying another"
  rm -rf "$DEMO_DIR/verifier.db" "$DEMO_DIR/verifier.db-"*
done
[[ -n "$PORT" ]] || die "no free port after 5 attempts"
VERIFIER_URL="https://127.0.0.1:$PORT"
say "agentroot-verifier: pid ${PIDS[verifier]}, $VERIFIER_URL, SQLite store, issuer key generated inside"
say "the SoftHSM2 token (PKCS#11); no host group is auto-approved; it trusts operator-ca/ca.crt for"
say "client certificates and knows one operator, carol (infra, bootstrapped by her certificate_sha256)"

# One CLI config file per operator (paths relative to the file's directory).
for entry in "${OPERATORS[@]}"; do
  name="${entry%%:*}"
  cat > "$OPS/$name.toml" <<TOML
# agentroot CLI settings of $name (docs/cli.md); written by scripts/demo.sh.
verifier    = "$VERIFIER_URL"
ca          = "../pki/ca.crt"
certificate = "$name/$name.crt"
private_key = "$name/$name.key"
TOML
done
say "CLI config files operators/{carol,alice,bob,audrey}.toml (verifier URL, TLS CA, certificate, key);"
say "NAME\$ agentroot … below runs agentroot --config operators/NAME.toml …"
for entry in "${OPERATORS[@]:1}"; do
  name="${entry%%:*}"
  rest="${entry#*:}"
  roles=()
  IFS=, read -ra role_list <<<"${rest%%:*}"
  for role in "${role_list[@]}"; do roles+=(--role "$role"); done
  as carol operator add "$name" --name "${rest#*:}" "${roles[@]}" --cert "operators/$name/$name.crt"
done
as carol operator list
indent <<<"$CLI_OUT"
CLI_OUT="$(cd "$DEMO_DIR" && "$AGENTROOT" --config operators/carol.toml -o json operator list)"
python3 -c '
import json, sys
listed = {o["id"]: sorted(o["roles"]) for o in json.loads(sys.argv[1])["operators"] if o["status"] == "active"}
expected = {e.split(":")[0]: sorted(e.split(":")[1].split(",")) for e in sys.argv[2:]}
sys.exit(0 if listed == expected else 1)' "$CLI_OUT" "${OPERATORS[@]}" \
  || die "operator list does not show the four operators with their roles: $CLI_OUT"

AUDIENCE="https://crm.example"
TSS2_LOG=all+NONE "$BIN/agentroot-resource-demo" --listen 127.0.0.1:0 --ready-file "$DEMO_DIR/crm.port" \
  --tls-certificate "$PKI/crm.crt" --tls-private-key "$PKI/crm.key" --issuer "$VERIFIER_URL" \
  --verifier-ca "$PKI/ca.crt" --audience "$AUDIENCE" 2>"$DEMO_DIR/resource.log" &
PIDS[resource]=$!
wait_for "agentroot-resource-demo" 10 "${PIDS[resource]}" test -s "$DEMO_DIR/crm.port"
CRM_URL="https://127.0.0.1:$(head -n1 "$DEMO_DIR/crm.port")"
say "agentroot-resource-demo (a CRM API, audience $AUDIENCE): pid ${PIDS[resource]}, $CRM_URL;"
say "it accepts only DPoP-bound tokens from the verifier and logs every decision"

# hostd on machine-0: its own state directory, socket and TCTI, one agent
# manifest. The agent is a copy of agentroot-example-agent in the demo
# directory, so that step 6 can change it without touching the build.
HOSTD_DIR="$DEMO_DIR/$MACHINE0-hostd"
mkdir -m 700 "$HOSTD_DIR" "$HOSTD_DIR/state" "$HOSTD_DIR/agents.d" "$DEMO_DIR/opt"
AGENT_EXE="$DEMO_DIR/opt/sales-bot"
cp "$BIN/agentroot-example-agent" "$AGENT_EXE"
chmod 755 "$AGENT_EXE"
cat > "$HOSTD_DIR/agents.d/sales-bot.toml" <<TOML
name = "sales-bot"
exe = "$AGENT_EXE"
uid = $(id -u)
proof_mode = "tpm"
TOML
cat > "$HOSTD_DIR/hostd.toml" <<TOML
# Written by scripts/demo.sh for one run; see config/hostd.example.toml.
[verifier]
url = "$VERIFIER_URL"
ca_file = "$PKI/ca.crt"
trust_domain = "example.org"

[tpm]
tcti = "$TCTI0"
ek_kind = "rsa2048"
$( [[ -n "$MANUFACTURER_INTERMEDIATE" ]] && echo "ek_intermediates_file = \"$MANUFACTURER_INTERMEDIATE\"" )

[host]
host_group = "crm-hosts"
state_dir = "$HOSTD_DIR/state"
manifests_dir = "$HOSTD_DIR/agents.d"

[api]
socket_path = "$HOSTD_DIR/hostd.sock"
worker_threads = 4

[timing]
enroll_backoff_initial_ms = 200
status_poll_seconds = 1
revocation_check_seconds = 1
TOML
TSS2_LOG=all+NONE "$BIN/agentroot-hostd" --config "$HOSTD_DIR/hostd.toml" 2>"$DEMO_DIR/hostd.log" &
PIDS[hostd]=$!
wait_for "agentroot-hostd" 10 "${PIDS[hostd]}" test -S "$HOSTD_DIR/hostd.sock"

TSS2_LOG=all+NONE "$BIN/agentroot-demo" \
  --verifier "$VERIFIER_URL" --ca "$PKI/ca.crt" --cli "$AGENTROOT" --operator-configs "$OPS" \
  --infra carol --owner alice --reviewer bob --auditor audrey \
  --fleet "$FLEET" --work-dir "$DEMO_DIR/narrator" \
  --hostd-socket "$HOSTD_DIR/hostd.sock" --hostd-state-dir "$HOSTD_DIR/state" --hostd-pid "${PIDS[hostd]}" \
  --agent-exe "$AGENT_EXE" --token-cli "$BIN/agentroot-token" \
  --api "$CRM_URL" --audience "$AUDIENCE" --api-log "$DEMO_DIR/resource.log" \
  --first-step 2 \
  || die "agentroot-demo failed (see above)"

# Stop everything in order; each must exit cleanly on SIGTERM.
for name in hostd resource verifier; do
  stop "$name"
  [[ "$STOP_RC" == 0 ]] || die "$name exited with status $STOP_RC after SIGTERM"
done
for log in verifier hostd resource; do
  if grep -Eq 'eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.' "$DEMO_DIR/$log.log"; then
    die "$log.log contains a whole JWT"
  fi
  if grep -q "$ISSUER_PIN" "$DEMO_DIR/$log.log"; then die "$log.log contains the issuer PIN"; fi
done
say "$(printf 'stopped hostd, the CRM API and the verifier (each exited 0 on SIGTERM); their logs hold no whole token')"
say "agentroot-sim: $("$SIM" tpm stop --dir "$DEMO_DIR")"

step "Done in $((SECONDS - STARTED)) s: every step behaved as expected."
