#!/usr/bin/env python3
"""Runs every agentroot benchmark and reports each figure against a ceiling
measured in the same run.

Google Benchmark binaries live in <build>/bench-bin. A benchmark names its
ceiling in its label: "ceiling=<openssl speed algorithm>:<sign|verify>[*n]",
several terms joined by "+" when one item costs several primitives.
Other suites (load generators for services) drop JSON lists of
{"name","value","unit","ceiling","ratio"} into <build>/bench/extra/*.json
(ceiling and ratio null for informational items such as latencies), and
scripts/bench.d/* steps compare against external tools (tpm2-tools) or run
those load generators; the extra files are merged after the steps ran.

Writes <build>/bench/results.json and prints a table. Exits non-zero if a
benchmark fails or names a ceiling this script cannot measure.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys


def openssl_speed(algorithms, seconds):
    """ops/s per (algorithm, 'sign'|'verify') from `openssl speed -mr`."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "-mr", *algorithms],
        check=True, capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        # +F2:<index>:<bits>:<sign/s>:<verify/s> for RSA, +F4 for ECDSA.
        m = re.match(r"^\+F([24]):\d+:(\d+):([\d.]+):([\d.]+)$", line)
        if not m:
            continue
        kind, bits, sign, verify = m.group(1), m.group(2), float(m.group(3)), float(m.group(4))
        name = f"rsa{bits}" if kind == "2" else f"ecdsap{bits}"
        rates[(name, "sign")] = sign
        rates[(name, "verify")] = verify
    return rates


def run_google_benchmark(binary, min_time):
    env = dict(os.environ, TSS2_LOG="all+NONE")
    out = subprocess.run(
        [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
        check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["benchmarks"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--min-time", default="0.5", help="seconds per Google Benchmark")
    parser.add_argument("--openssl-seconds", type=int, default=2)
    args = parser.parse_args()

    bench_bin = os.path.join(args.build_dir, "bench-bin")
    out_dir = os.path.join(args.build_dir, "bench")
    os.makedirs(out_dir, exist_ok=True)
    binaries = sorted(p for p in glob.glob(os.path.join(bench_bin, "*"))
                      if os.access(p, os.X_OK) and os.path.isfile(p))
    if not binaries:
        sys.exit(f"bench: no benchmark binaries in {bench_bin}; build first")

    raw = []
    for binary in binaries:
        print(f"bench: running {os.path.basename(binary)}", file=sys.stderr)
        raw.extend(run_google_benchmark(binary, args.min_time))

    # Label: "ceiling=<alg>:<op>[*<n>][+<alg>:<op>[*<n>]...]" - the primitive
    # operations one item costs; the ceiling is 1 / sum(n_i / rate_i).
    term = re.compile(r"([a-z0-9]+):(sign|verify)(?:\*(\d+))?")

    def ceiling_terms(label):
        m = re.match(r"ceiling=(\S+)", label or "")
        if not m:
            return None
        terms = []
        for part in m.group(1).split("+"):
            t = term.fullmatch(part)
            if not t:
                return None
            terms.append((t.group(1), t.group(2), int(t.group(3) or 1)))
        return terms

    wanted = set()
    for b in raw:
        for alg, _, _ in ceiling_terms(b.get("label", "")) or []:
            wanted.add(alg)
    print(f"bench: measuring openssl speed {' '.join(sorted(wanted))}", file=sys.stderr)
    ceilings = openssl_speed(sorted(wanted), args.openssl_seconds) if wanted else {}

    results = []
    for b in raw:
        if b.get("error_occurred"):
            sys.exit(f"bench: {b['name']} failed: {b.get('error_message')}")
        value = b.get("items_per_second")
        if value is None and b.get("real_time"):
            # One item per iteration: the rate from the time per iteration.
            per_unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
            value = 1.0 / (b["real_time"] * per_unit)
        if value is None:
            sys.exit(f"bench: {b['name']} reported neither items_per_second nor a time")
        counters = {k: v for k, v in b.items()
                    if isinstance(v, (int, float)) and k not in (
                        "iterations", "real_time", "cpu_time", "items_per_second", "repetitions",
                        "repetition_index", "threads", "family_index", "per_family_instance_index")}
        terms = ceiling_terms(b.get("label", ""))
        if not terms:
            # Figures with no primitive to compare with (latencies, the TPM's
            # utilisation): reported as measured, without a ratio.
            results.append({"name": b["name"], "value": round(value, 3), "unit": "ops/s", "ceiling": None,
                            "ceiling_source": None, "ratio": None, "counters": counters})
            continue
        cost = 0.0
        for alg, op, n in terms:
            rate = ceilings.get((alg, op))
            if not rate:
                sys.exit(f"bench: could not measure ceiling {alg}:{op} for {b['name']}")
            cost += n / rate
        ceiling = 1.0 / cost
        source = " + ".join(f"{n} x {alg} {op}" for alg, op, n in terms)
        results.append({
            "name": b["name"],
            "value": round(value, 1),
            "unit": "ops/s",
            "ceiling": round(ceiling, 1),
            "ceiling_source": f"openssl speed: {source}",
            "ratio": round(value / ceiling, 3),
            **({"counters": counters} if counters else {}),
        })

    # Comparison steps that need the figures above: scripts/bench.d/*, each
    # given the results so far in $BENCH_RESULTS, printing a JSON list.
    partial = os.path.join(out_dir, "partial.json")
    with open(partial, "w") as f:
        json.dump(results, f)
    script_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.d")
    for step in sorted(glob.glob(os.path.join(script_dir, "*"))):
        if not os.access(step, os.X_OK):
            continue
        print(f"bench: running {os.path.basename(step)}", file=sys.stderr)
        env = dict(os.environ, BENCH_RESULTS=partial, BUILD_DIR=args.build_dir)
        # stdout is the JSON list; stderr (progress, errors) passes through.
        out = subprocess.run([step], check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
        results.extend(json.loads(out))

    # Service load generators write build/bench/extra/*.json (some of them
    # from the bench.d steps above): merged last, so a step's fresh file is in.
    for extra in sorted(glob.glob(os.path.join(out_dir, "extra", "*.json"))):
        with open(extra) as f:
            results.extend(json.load(f))

    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    width = max(len(r["name"]) for r in results)
    sys.stderr.flush()
    print(f"{'benchmark':<{width}}  {'value':>12}  {'unit':<6}  {'ceiling':>12}  {'ratio':>6}")
    for r in results:
        # Informational items (latency, CPU per request) have no ceiling.
        ceiling = "-" if r.get("ceiling") is None else f"{r['ceiling']:.1f}"
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.3f}"
        print(f"{r['name']:<{width}}  {r['value']:>12.1f}  {r['unit']:<6}  "
              f"{ceiling:>12}  {ratio:>6}")
    print(f"bench: wrote {os.path.join(out_dir, 'results.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
