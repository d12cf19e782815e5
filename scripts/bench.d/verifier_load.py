#!/usr/bin/env python3
"""Service-level load on the verifier (issue 4): build/bin/agentroot-verifier-load
against the real agentroot-verifier on SQLite, then on PostgreSQL (a private
server it starts). See docs/benchmarks.md.

Called by scripts/bench.py. Each run writes its items to
$BUILD_DIR/bench/extra/verifier_load_<store>.json, which bench.py merges
after the bench.d steps; this step prints an empty list. Sized for the
2-core machine: about 60 s per store, of which ~8 s seed 500 agents (one
durable commit per row). VERIFIER_LOAD_ARGS adds flags (e.g.
"--duration 20 --connections 16").
"""
import os
import shlex
import subprocess
import sys

build = os.environ.get("BUILD_DIR", "build")
load = os.path.join(build, "bin", "agentroot-verifier-load")
verifier = os.path.join(build, "bin", "agentroot-verifier")
for binary in (load, verifier):
    if not os.access(binary, os.X_OK):
        sys.exit(f"verifier_load: {binary} is missing; build first")

extra = os.path.join(build, "bench", "extra")
os.makedirs(extra, exist_ok=True)
for store in ("sqlite", "postgresql"):
    out = os.path.join(extra, f"verifier_load_{store}.json")
    if os.path.exists(out):
        os.remove(out)  # never merge a stale figure
    cmd = [load, "--verifier-bin", verifier, "--store", store,
           "--hosts", "25", "--agents-per-host", "20", "--connections", "8",
           "--duration", "10", "--warmup", "1", "--openssl-seconds", "2",
           "--out", out, *shlex.split(os.environ.get("VERIFIER_LOAD_ARGS", ""))]
    print(f"bench: verifier_load: {' '.join(cmd)}", file=sys.stderr)
    # Its progress goes to stderr; a failed request fails the step.
    subprocess.run(cmd, check=True, stdout=sys.stderr)
print("[]")
