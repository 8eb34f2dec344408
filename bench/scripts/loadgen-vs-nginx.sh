#!/usr/bin/env bash
# Does `corestore loadgen` saturate nginx on the same machine? And corestore vs nginx, 4 KiB GET.
#
# nginx (one worker) and `corestore serve` (one core) run pinned to SERVER_CPU; the generator runs
# pinned to CLIENT_CPU (`--cpus`). For each server: one `loadgen get` run of SECONDS on
# OBJECTS 4 KiB objects over CONNECTIONS connections; the server's CPU (utime + stime of its
# processes, from /proc) is read around the run, the generator's from its own JSON report
# (`generator_cpu_share`: its core thread's CPU over the run). nginx serves static files with
# anonymous requests; corestore gets SigV4-signed requests (its objects are put first by an
# unmeasured `loadgen get --noclear` run). Prints one line per run and the JSON files' paths.
#
# Usage: bench/scripts/loadgen-vs-nginx.sh [BIN_DIR]   (BIN_DIR: where corestore and
# corestore-bench are, default target/release; nginx from the distribution: apt-get install nginx)
set -euo pipefail

BIN=${1:-target/release}
SECONDS_RUN=${SECONDS_RUN:-10}
OBJECTS=${OBJECTS:-1024}
CONNECTIONS=${CONNECTIONS:-64}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
ROUNDS=${ROUNDS:-3}
# Seconds between rounds: on a shared machine, runs spread over time meet quiet moments (each
# line says how much CPU other processes took during it).
PAUSE_S=${PAUSE_S:-0}
# Which servers to measure, in this order each round.
SERVERS=${SERVERS:-nginx corestore}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d /tmp/loadgen-vs-nginx.XXXXXX)
AK=loadgenbench
SK=loadgen-bench-secret-key-0123456789
BUCKET=warp-benchmark-bucket
HZ=$(getconf CLK_TCK)

[ -x "$NGINX" ] || { echo "nginx not found: apt-get install -y nginx" >&2; exit 2; }
[ -x "$BIN/corestore-bench" ] || { echo "$BIN/corestore-bench missing: cargo build --release -p bench -p tools" >&2; exit 2; }

cleanup() {
    [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null || true
    [ -n "${CS_PID:-}" ] && kill "$CS_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

# utime + stime, in ticks, of a process and its children.
cpu_ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo "$total"
}

# "busy idle softirq" ticks of one cpu (busy: user nice system irq softirq steal; idle: idle iowait).
cpu_line() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6, $8 }' /proc/stat
}

# run_get NAME PID EXTRA_ARGS...: one measured run, one result line.
run_get() {
    local name=$1 pid=$2
    shift 2
    local json="$WORK/$name-$(date +%H%M%S%N).json"
    local before after client_before client_after server_before server_after
    before=$(cpu_ticks "$pid"); client_before=$(cpu_line "$CLIENT_CPU"); server_before=$(cpu_line "$SERVER_CPU")
    "$BIN/corestore-bench" loadgen get --cpus "$CLIENT_CPU" --concurrent "$CONNECTIONS" --objects "$OBJECTS" \
        --obj.size 4KiB --duration "${SECONDS_RUN}s" --skip-prepare --quiet --json "$json" "$@" > /dev/null
    after=$(cpu_ticks "$pid"); client_after=$(cpu_line "$CLIENT_CPU"); server_after=$(cpu_line "$SERVER_CPU")
    python3 "$WORK/line.py" "$json" "$name" "$before" "$after" "$HZ" "$client_before" "$client_after" "$server_before" "$server_after"
}

cat > "$WORK/line.py" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
name, before, after, hz = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def delta(a, b):
    return [y - x for x, y in zip(map(int, a.split()), map(int, b.split()))]
client, server_cpu = delta(sys.argv[6], sys.argv[7]), delta(sys.argv[8], sys.argv[9])
share = lambda d, i: d[i] / max(d[0] + d[1], 1)
get = next(o for o in doc["ops"] if o["op"] == "GET")
elapsed = doc["elapsed_s"]
server_s = (after - before) / hz
generator_s = doc["generator_cpu_share"] * elapsed
# Busy time of both cpus that is neither the generator, the server, nor softirq: other processes.
others = ((client[0] - client[2]) + (server_cpu[0] - server_cpu[2])) / hz - server_s - generator_s
print(f'{name}: {get["ops_per_s"]:.0f} GET/s, p50 {get["latency_us"]["p50"]:.0f} us, p99 {get["latency_us"]["p99"]:.0f} us, '
      f'errors {doc["errors"]}; generator thread {100 * doc["generator_cpu_share"]:.0f}% of a cpu, server process {100 * server_s / elapsed:.0f}%; '
      f'client cpu busy {100 * share(client, 0):.0f}% (softirq {100 * share(client, 2):.0f}%), '
      f'server cpu busy {100 * share(server_cpu, 0):.0f}% (softirq {100 * share(server_cpu, 2):.0f}%), '
      f'other processes {100 * max(others, 0) / elapsed:.0f}% of a cpu ({sys.argv[1]})')
EOF

# nginx: static files named as loadgen names objects (<prefix><8 digits>).
mkdir -p "$WORK/root/$BUCKET/n" "$WORK/nginx/temp"
head -c 4096 /dev/urandom > "$WORK/object"
for i in $(seq 0 $((OBJECTS - 1))); do cp "$WORK/object" "$WORK/root/$BUCKET/n/$(printf %08d "$i")"; done
PORT_N=19081
USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat > "$WORK/nginx/nginx.conf" <<EOF
$USER_LINE
daemon off; master_process on; worker_processes 1; error_log stderr; pid $WORK/nginx/nginx.pid;
events { worker_connections 20000; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $WORK/nginx/temp/body; proxy_temp_path $WORK/nginx/temp/proxy;
  fastcgi_temp_path $WORK/nginx/temp/fastcgi; uwsgi_temp_path $WORK/nginx/temp/uwsgi; scgi_temp_path $WORK/nginx/temp/scgi;
  types { } default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT_N; root $WORK/root; }
}
EOF
taskset -c "$SERVER_CPU" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e stderr &
NGINX_PID=$!
PORT_C=19082
taskset -c "$SERVER_CPU" "$BIN/corestore" serve --data "$WORK/corestore-data" --listen "127.0.0.1:$PORT_C" --cores 1 \
    --access-key "$AK" --secret-key "$SK" > "$WORK/corestore.log" 2>&1 &
CS_PID=$!
sleep 2
"$BIN/corestore-bench" loadgen get --host "127.0.0.1:$PORT_C" --access-key "$AK" --secret-key "$SK" --cpus "$CLIENT_CPU" \
    --objects "$OBJECTS" --obj.size 4KiB --duration 1s --prefix c/ --noclear --quiet --json "$WORK/fill.json" > /dev/null

echo "# $(uname -r), $(nproc) cpus: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $("$NGINX" -v 2>&1)"
echo "# generator on cpu $CLIENT_CPU, server on cpu $SERVER_CPU; $CONNECTIONS connections, $OBJECTS objects of 4 KiB, ${SECONDS_RUN} s per run"
echo "# $(date -u +%FT%TZ)"
for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        case $server in
            nginx) run_get "nginx" "$NGINX_PID" --host "127.0.0.1:$PORT_N" --prefix n/ ;;
            corestore) run_get "corestore" "$CS_PID" --host "127.0.0.1:$PORT_C" --access-key "$AK" --secret-key "$SK" --prefix c/ ;;
            *) echo "SERVERS: nginx or corestore, not $server" >&2; exit 2 ;;
        esac
    done
    sleep "$PAUSE_S"
done
