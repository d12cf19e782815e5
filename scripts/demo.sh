#!/usr/bin/env bash
# The agentroot demo on embedded defaults, narrated.
#
# What exists so far (issue 2): a fleet of simulated machines, each with its
# own swtpm manufactured with an EK certificate by a local "TPM manufacturer"
# CA, and the JOSE core. The demo starts two machines, reads each EK
# certificate from TPM NV with agentroot's own TPM code, has tpm2-tools read
# the same index independently, checks both chain to the manufacturer CA with
# the openssl CLI, and stops the fleet. Later issues extend it to enrollment,
# attestation, tokens and the stolen-token replay that fails.
set -euo pipefail

BUILD_DIR="${1:-build}"
SIM="$BUILD_DIR/bin/agentroot-sim"
[[ -x "$SIM" ]] || { echo "demo: $SIM not built; run 'make demo'" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }

DEMO_DIR="$(mktemp -d /tmp/agentroot-demo.XXXXXX)"
cleanup() {
  "$SIM" tpm stop --dir "$DEMO_DIR" >/dev/null 2>&1 || true
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

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
    echo "demo: machine-$i: tpm2-tools disagrees with agentroot's NV read" >&2; exit 1
  fi
  i=$((i + 1))
done

step "3. Verify both certificates chain to the manufacturer's root CA (openssl verify)"
say "The manufacturer signs EK certificates with an intermediate CA under its root."
UNTRUSTED=()
[[ -n "$INTERMEDIATE" ]] && UNTRUSTED=(-untrusted "$INTERMEDIATE")
for ((j = 0; j < i; j++)); do
  result="$(openssl verify -CAfile "$CA" "${UNTRUSTED[@]}" "$DEMO_DIR/machine-$j-ek-rsa.pem" 2>&1)" \
    || { echo "demo: machine-$j: $result" >&2; exit 1; }
  say "machine-$j: ${result##*: }"
done
a="$(openssl x509 -in "$DEMO_DIR/machine-0-ek-rsa.pem" -noout -pubkey | sha256sum | cut -c1-16)"
b="$(openssl x509 -in "$DEMO_DIR/machine-1-ek-rsa.pem" -noout -pubkey | sha256sum | cut -c1-16)"
say "EK public key hashes: machine-0 $a…, machine-1 $b…"
[[ "$a" != "$b" ]] || { echo "demo: two machines share an EK" >&2; exit 1; }
say "Different machines, different endorsement keys: each TPM is a distinct identity."

step "4. Stop the fleet"
say "agentroot-sim: $("$SIM" tpm stop --dir "$DEMO_DIR")"
say "All swtpm instances of this demo stopped."
trap - EXIT
rm -rf "$DEMO_DIR"

step "Done. Next: enrollment, agent keys, attestation and DPoP-bound tokens (issues 3-5)."
