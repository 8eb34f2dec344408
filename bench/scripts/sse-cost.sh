#!/usr/bin/env bash
# What server-side encryption costs: corestore's GET and PUT throughput and p99 with SSE-S3 and
# SSE-C, each as a ratio to plaintext measured in the same run on the same server.
#
# One `corestore serve` (one core, pinned to SERVER_CPU with taskset) on a fresh data directory;
# `corestore loadgen` (warp's `--sse-s3-encrypt` and `--encrypt`) on CLIENT_CPUS. For each
# object size and each round, the three modes run back to back (plain, SSE-S3, SSE-C), each a
# `get` run (its objects uploaded first, unmeasured, with the same encryption) and a `put` run
# of SECONDS_RUN. Ratios compare the mode's median over ROUNDS with plaintext's.
#
# Usage: bench/scripts/sse-cost.sh [BIN_DIR]   (default target/release; after
#        cargo build --release -p tools)
set -euo pipefail

BIN=${1:-target/release}
SECONDS_RUN=${SECONDS_RUN:-5}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-4KiB 1MiB}
CONNECTIONS=${CONNECTIONS:-32}
CLIENT_CPUS=${CLIENT_CPUS:-0}
SERVER_CPU=${SERVER_CPU:-1}
WORK=$(mktemp -d /tmp/sse-cost.XXXXXX)
AK=ssecostbench
SK=sse-cost-bench-secret-key-0123456789

[ -x "$BIN/corestore" ] || { echo "$BIN/corestore missing: cargo build --release -p tools" >&2; exit 2; }

cleanup() {
    [ -n "${CS_PID:-}" ] && kill "$CS_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$BIN/corestore" serve --data "$WORK/data" --listen 127.0.0.1:0 --cores 1 --segment-mib 256 \
    --access-key "$AK" --secret-key "$SK" > "$WORK/serve.log" 2>&1 &
CS_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/serve.log" && break
    sleep 0.1
done
ADDR=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$WORK/serve.log" | head -1)
[ -n "$ADDR" ] || { echo "corestore serve did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }

declare -A FLAG=([plain]="" [sse-s3]="--sse-s3-encrypt" [sse-c]="--encrypt")
echo "# corestore serve --cores 1 on cpu $SERVER_CPU; loadgen on cpus $CLIENT_CPUS, $CONNECTIONS connections, ${SECONDS_RUN}s runs, $ROUNDS rounds"
echo "# $(nproc) cpus: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r)"
for size in $SIZES; do
    for round in $(seq "$ROUNDS"); do
        for mode in plain sse-s3 sse-c; do
            for op in get put; do
                objects=$([ "$size" = 4KiB ] && echo 2000 || echo 200)
                extra=$([ "$op" = get ] && echo "--objects $objects" || echo "")
                # shellcheck disable=SC2086
                "$BIN/corestore" loadgen "$op" --host "$ADDR" --access-key "$AK" --secret-key "$SK" \
                    --cpus "$CLIENT_CPUS" --concurrent "$CONNECTIONS" --obj.size "$size" --duration "${SECONDS_RUN}s" \
                    --quiet --json "$WORK/$size-$mode-$op-$round.json" ${FLAG[$mode]} $extra > /dev/null
            done
        done
    done
done

python3 - "$WORK" "$ROUNDS" $SIZES <<'EOF'
import json, statistics, sys
work, rounds, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def med(size, mode, op, field):
    vals = []
    for r in range(1, rounds + 1):
        doc = json.load(open(f"{work}/{size}-{mode}-{op}-{r}.json"))
        assert doc["errors"] == 0, f"{size} {mode} {op} round {r}: errors {doc['first_errors']}"
        o = next(o for o in doc["ops"] if o["op"] == op.upper())
        vals.append(o["ops_per_s"] if field == "ops" else o["bytes_per_s"] / 2**20 if field == "mib" else o["latency_us"]["p99"])
    return statistics.median(vals)
print(f"{'size':>6} {'op':>4} {'mode':>7} {'ops/s':>10} {'MiB/s':>9} {'p99 us':>9} {'ratio':>6} {'p99 x':>6}")
for size in sizes:
    for op in ("get", "put"):
        base_ops, base_p99 = med(size, "plain", op, "ops"), med(size, "plain", op, "p99")
        for mode in ("plain", "sse-s3", "sse-c"):
            ops, mib, p99 = med(size, mode, op, "ops"), med(size, mode, op, "mib"), med(size, mode, op, "p99")
            print(f"{size:>6} {op:>4} {mode:>7} {ops:>10.0f} {mib:>9.1f} {p99:>9.0f} {ops / base_ops:>6.2f} {p99 / base_p99:>6.2f}")
EOF
