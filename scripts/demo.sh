#!/usr/bin/env bash
# The agentroot demo on embedded defaults (SQLite, swtpm), narrated.
#
# 1-3. A fleet of two simulated machines, each with its own swtpm
#      manufactured with an EK certificate by a local "TPM manufacturer" CA;
#      each EK certificate is read with agentroot's own TPM code and with
#      tpm2-tools, and checked against the manufacturer CA with openssl.
# 4.   A throwaway PKI (openssl CLI): a CA, the verifier's server certificate,
#      client certificates of four operators (infra, owner, reviewer, auditor).
# 5.   The real agentroot-verifier (--dev: file issuer key, SQLite store in
#      the demo directory) on a free loopback port.
# 6-.  agentroot-demo against it: enrollment, governance, agent key,
#      attestation, DPoP-bound token, resource-server check, the stolen token
#      refused on machine-1, a changed binary refused, revocation, audit.
# Last. The verifier is stopped with SIGTERM and the fleet stopped. Everything
#      lives in one temporary directory, removed on any exit.
#
# Usage: scripts/demo.sh [BUILD_DIR]   (default: build)
set -euo pipefail

BUILD_DIR="${1:-build}"
SIM="$BUILD_DIR/bin/agentroot-sim"
VERIFIER="$BUILD_DIR/bin/agentroot-verifier"
DEMO="$BUILD_DIR/bin/agentroot-demo"
for bin in "$SIM" "$VERIFIER" "$DEMO"; do
  [[ -x "$bin" ]] || { echo "demo: $bin not built; run 'make demo'" >&2; exit 1; }
done

if [[ -t 1 ]]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi
say() { printf '   %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

STARTED=$SECONDS
DEMO_DIR="$(mktemp -d /tmp/agentroot-demo.XXXXXX)"
VERIFIER_PID=""
VERIFIER_RC=""

stop_verifier() {
  [[ -n "$VERIFIER_PID" ]] || return 0
  if kill -0 "$VERIFIER_PID" 2>/dev/null; then
    kill -TERM "$VERIFIER_PID" 2>/dev/null || true
    for _ in $(seq 1 120); do
      kill -0 "$VERIFIER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$VERIFIER_PID" 2>/dev/null; then
      echo "demo: the verifier ignored SIGTERM for 12 s; killing it" >&2
      kill -KILL "$VERIFIER_PID" 2>/dev/null || true
    fi
  fi
  VERIFIER_RC=0
  wait "$VERIFIER_PID" 2>/dev/null || VERIFIER_RC=$?
  VERIFIER_PID=""
}

cleanup() {
  local rc=$?
  stop_verifier
  "$SIM" tpm stop --dir "$DEMO_DIR" >/dev/null 2>&1 || true
  if [[ $rc -ne 0 && -s "$DEMO_DIR/verifier.log" ]]; then
    echo "demo: last lines of the verifier's log:" >&2
    tail -n 15 "$DEMO_DIR/verifier.log" | sed 's/^/   /' >&2
  fi
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "1. Start a fleet of two simulated machines, each with its own TPM (swtpm)"
say "Each machine's TPM is manufactured with an EK certificate signed by a local"
say "'TPM manufacturer' CA, exactly as a vendor would do at the factory."
"$SIM" tpm start --machines 2 --dir "$DEMO_DIR" > "$DEMO_DIR/fleet-out.json"
python3 - "$DEMO_DIR/fleet-out.json" <<'PY'
import json, sys
fleet = json.load(open(sys.argv[1]))
print(f"   manufacturer CA: {fleet['manufacturer_ca']}")
for m in fleet["machines"]:
    print(f"   {m['name']}: pid {m['pid']}, TCTI {m['tcti']}")
PY

step "2. Read each machine's EK certificate from TPM NV (TCG EK credential profile)"
CA="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manufacturer_ca"])' "$DEMO_DIR/fleet-out.json")"
INTERMEDIATE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("manufacturer_intermediate", ""))' "$DEMO_DIR/fleet-out.json")"
mapfile -t TCTIS < <(python3 -c 'import json,sys; [print(m["tcti"]) for m in json.load(open(sys.argv[1]))["machines"]]' "$DEMO_DIR/fleet-out.json")
i=0
for tcti in "${TCTIS[@]}"; do
  ours="$DEMO_DIR/machine-$i-ek-rsa.pem"
  "$SIM" tpm ek-cert --tcti "$tcti" --kind rsa2048 --out "$ours"
  say "machine-$i: agentroot read NV 0x01c00002 -> $(openssl x509 -in "$ours" -noout -fingerprint -sha256 | cut -d= -f2 | cut -c1-29)…"
  # An independent reader: tpm2-tools, through the same TCTI.
  theirs="$DEMO_DIR/machine-$i-ek-rsa.tools.der"
  TPM2TOOLS_TCTI="$tcti" tpm2_nvread 0x01c00002 -C o -o "$theirs" >/dev/null 2>&1 \
    || TPM2TOOLS_TCTI="$tcti" tpm2_nvread 0x01c00002 -C 0x01c00002 -o "$theirs" >/dev/null
  if cmp -s <(openssl x509 -in "$ours" -outform DER) <(openssl x509 -inform DER -in "$theirs" -outform DER); then
    say "machine-$i: tpm2_nvread returns the same certificate byte for byte"
  else
    die "machine-$i: tpm2-tools disagrees with agentroot's NV read"
  fi
  i=$((i + 1))
done

step "3. Verify both certificates chain to the manufacturer's root CA (openssl verify)"
say "The manufacturer signs EK certificates with an intermediate CA under its root."
UNTRUSTED=()
[[ -n "$INTERMEDIATE" ]] && UNTRUSTED=(-untrusted "$INTERMEDIATE")
for ((j = 0; j < i; j++)); do
  result="$(openssl verify -CAfile "$CA" "${UNTRUSTED[@]}" "$DEMO_DIR/machine-$j-ek-rsa.pem" 2>&1)" \
    || die "machine-$j: $result"
  say "machine-$j: ${result##*: }"
done
a="$(openssl x509 -in "$DEMO_DIR/machine-0-ek-rsa.pem" -noout -pubkey | sha256sum | cut -c1-16)"
b="$(openssl x509 -in "$DEMO_DIR/machine-1-ek-rsa.pem" -noout -pubkey | sha256sum | cut -c1-16)"
say "EK public key hashes: machine-0 $a…, machine-1 $b…"
[[ "$a" != "$b" ]] || die "two machines share an EK"
say "Different machines, different endorsement keys: each TPM is a distinct identity."

step "4. A throwaway PKI for the verifier's HTTPS and the operators' mutual TLS (openssl)"
PKI="$DEMO_DIR/pki"
mkdir -m 700 "$PKI"
cat > "$PKI/openssl.cnf" <<'EOF'
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
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${newkey[@]}" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 1 \
  -subj "/O=agentroot demo/CN=agentroot demo CA" -config "$PKI/openssl.cnf" -extensions ca 2>/dev/null
issue() {  # issue NAME SUBJECT EXTENSIONS
  openssl req -new "${newkey[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2" \
    -config "$PKI/openssl.cnf" 2>/dev/null
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -days 1 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$PKI/openssl.cnf" -extensions "$3" \
    -out "$PKI/$1.crt" 2>/dev/null
  rm -f "$PKI/$1.csr"
}
fingerprint() { openssl x509 -in "$PKI/$1.crt" -outform DER | sha256sum | cut -d' ' -f1; }
issue server "/O=agentroot demo/CN=localhost" server
say "CA 'agentroot demo CA' (EC P-256, valid 1 day); verifier certificate for IP:127.0.0.1, DNS:localhost"
OPERATORS=("carol:infra" "alice:owner,reviewer" "bob:reviewer" "audrey:auditor")
declare -A FP
for entry in "${OPERATORS[@]}"; do
  name="${entry%%:*}" roles="${entry#*:}"
  issue "$name" "/O=agentroot demo/OU=operators/CN=$name" client
  FP[$name]="$(fingerprint "$name")"
  say "$(printf '%-7s %-16s client certificate, SHA-256(DER) %s…' "$name" "($roles)" "${FP[$name]:0:24}")"
done
say "alice is owner and reviewer, so the self-review rule, not a missing role, is what stops her."

step "5. Start agentroot-verifier (SQLite store, file issuer key: --dev)"
write_config() {  # write_config PORT
  cat > "$DEMO_DIR/verifier.toml" <<EOF
# Written by scripts/demo.sh for one run; see config/verifier.example.toml.
[server]
listen = "127.0.0.1:$1"
tls_certificate = "$PKI/server.crt"
tls_private_key = "$PKI/server.key"
operator_ca = "$PKI/ca.crt"
inline_handlers = true
threads = 2

[verifier]
issuer = "https://127.0.0.1:$1"
trust_domain = "example.org"
manufacturer_roots = "$CA"
auto_approve_groups = []
measurement_pcr = 15

[store]
uri = "sqlite:$DEMO_DIR/verifier.db"

[issuer_key]
backend = "file"
dir = "$DEMO_DIR/issuer-key"
key_id = "issuer-1"
EOF
  for entry in "${OPERATORS[@]}"; do
    local name="${entry%%:*}" roles="${entry#*:}"
    cat >> "$DEMO_DIR/verifier.toml" <<EOF

[[bootstrap_operators]]
id = "$name"
roles = [$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$roles")]
certificate_sha256 = "${FP[$name]}"
EOF
  done
}
jwks_ready() {  # jwks_ready PORT -> prints "kid alg" when the JWKS answers
  python3 - "$1" "$PKI/ca.crt" <<'PY' 2>/dev/null
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(f"https://127.0.0.1:{sys.argv[1]}/.well-known/jwks.json", context=ctx, timeout=2) as r:
    key = json.load(r)["keys"][0]
    print(f"kid {key['kid']}, {key['alg']} ({key['kty']} {key.get('crv', '')})")
PY
}
PORT="" JWKS=""
for _ in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 40000))
  write_config "$candidate"
  : > "$DEMO_DIR/verifier.log"
  "$VERIFIER" --dev --config "$DEMO_DIR/verifier.toml" 2>>"$DEMO_DIR/verifier.log" &
  VERIFIER_PID=$!
  for _ in $(seq 1 100); do
    if JWKS="$(jwks_ready "$candidate")"; then PORT=$candidate; break; fi
    kill -0 "$VERIFIER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$PORT" ]] && break
  if kill -0 "$VERIFIER_PID" 2>/dev/null; then die "the verifier did not answer on port $candidate within 10 s"; fi
  wait "$VERIFIER_PID" 2>/dev/null || true
  VERIFIER_PID=""
  grep -qi "in use" "$DEMO_DIR/verifier.log" || die "the verifier did not start"
  say "port $candidate is taken; trying another"
  rm -rf "$DEMO_DIR/verifier.db" "$DEMO_DIR/verifier.db-"* "$DEMO_DIR/issuer-key"
done
[[ -n "$PORT" ]] || die "no free port after 5 attempts"
say "config: $DEMO_DIR/verifier.toml (no auto-approve group, 4 bootstrap operators)"
python3 - "$DEMO_DIR/verifier.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        print(f"   verifier stderr: {line.strip()}")
        continue
    extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("ts", "level", "msg"))
    print(f"   verifier log: {e.get('msg')}" + (f" ({extra})" if extra else ""))
PY
say "pid $VERIFIER_PID on https://127.0.0.1:$PORT; /.well-known/jwks.json answers: $JWKS"

"$DEMO" --verifier "https://127.0.0.1:$PORT" --ca "$PKI/ca.crt" --operator-dir "$PKI" \
  --infra carol --owner alice --reviewer bob --auditor audrey \
  --fleet "$DEMO_DIR/fleet.json" --state-dir "$DEMO_DIR/demo-state" --first-step 6 \
  || die "agentroot-demo failed (see above)"

# agentroot-demo narrates steps 6-14.
step "15. Stop the verifier (SIGTERM) and the fleet"
stop_verifier
[[ "$VERIFIER_RC" == 0 ]] || die "the verifier exited with status $VERIFIER_RC after SIGTERM"
say "verifier: finished in-flight requests and exited 0 ($(wc -l < "$DEMO_DIR/verifier.log") log lines on stderr)"
if grep -Eq 'eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.' "$DEMO_DIR/verifier.log"; then
  die "the verifier's log contains a whole JWT"
fi
say "its log holds no whole token (checked: no JWS compact serialization in it)"
say "agentroot-sim: $("$SIM" tpm stop --dir "$DEMO_DIR")"
trap - EXIT
rm -rf "$DEMO_DIR"

step "Done in $((SECONDS - STARTED)) s: a token bound to machine-0's TPM was useless on machine-1."
