#!/usr/bin/env python3
"""Scan the logs the tests produced for secrets (THREATS.md #20).

Usage: scripts/scan-test-logs.py PATH [PATH ...]

Each PATH is a file or a directory (searched recursively; a PATH that does not
exist is passed over, so long as one does). Every text line is
checked for:
  - a whole signed compact JWS/JWT (header.payload.signature; the project logs
    at most a token's first characters, never its signature);
  - a PEM private key;
  - a private JWK member ("d", "p", "q", "dp", "dq", "qi" with a key-sized
    base64url value);
  - the PINs the test fixtures use (a PIN must never be logged).

Prints one line per finding, `path:line: kind` (never the secret itself, so
the scan's own output is safe to keep), and exits 1 if there was any, 0 if
none, 2 on a usage error or when no PATH exists. Hex-encoded raw keys cannot
be told from digests and are not looked for: the code logs neither.
"""

import os
import re
import sys

# A signed compact JWS: base64url JSON header ("{" -> "eyJ"), a payload, and a
# signature long enough to be one (ES256 = 86 characters, RS256 = 342).
JWS = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{40,}")
PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Private JWK members; escaped quotes cover JSON embedded in JSON strings.
JWK_PRIVATE = re.compile(rb'\\?"(d|p|q|dp|dq|qi)\\?"\s*:\s*\\?"[A-Za-z0-9_-]{32,}\\?"')
# The PINs of hsm/include/agentroot/hsm/testing/scoped_softhsm_token.h and of
# the PKCS#11 tests. tests: scan_test_logs_test keeps this list honest.
TEST_PINS = [b"1234-user-pin", b"5678-so-pin", b"right-pin", b"not-the-pin"]

SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".sqlite", ".so", ".a", ".o", ".permall", ".volatilestate")
MAX_BYTES = 256 * 1024 * 1024


def findings_in(path):
    try:
        if os.path.getsize(path) > MAX_BYTES:
            yield 0, f"file larger than {MAX_BYTES} bytes, not scanned"
            return
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        yield 0, f"unreadable: {e.strerror}"
        return
    if b"\0" in data[:4096]:
        return  # binary (TPM state, databases): not a log
    for number, line in enumerate(data.split(b"\n"), start=1):
        if JWS.search(line):
            yield number, "whole signed token (compact JWS)"
        if PEM_PRIVATE.search(line):
            yield number, "PEM private key"
        if JWK_PRIVATE.search(line):
            yield number, "private JWK member"
        for pin in TEST_PINS:
            if pin in line:
                yield number, "test PIN"


def files_under(root):
    if os.path.isfile(root):
        yield root
        return
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            if not name.endswith(SKIP_SUFFIXES):
                yield os.path.join(directory, name)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    roots = [p for p in argv[1:] if os.path.exists(p)]
    if not roots:
        print("scan-test-logs: none of the paths exists: " + " ".join(argv[1:]), file=sys.stderr)
        return 2
    scanned = 0
    bad = 0
    for root in roots:
        for path in files_under(root):
            scanned += 1
            for number, kind in findings_in(path):
                bad += 1
                print(f"{path}:{number}: {kind}")
    print(f"scan-test-logs: {scanned} files, {bad} findings", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
