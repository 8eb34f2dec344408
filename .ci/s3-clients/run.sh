#!/usr/bin/env bash
# Runs real S3 clients (awscli, boto3, rclone, s3cmd) against a real `corestore serve`.
#   .ci/s3-clients/run.sh [CORESTORE_BIN]      (default: $CORESTORE_BIN, else target/release/corestore)
# Installs the clients it lacks (apt: rclone s3cmd curl; pip in a venv: boto3 awscli) and fails
# if any install fails. Prints `s3-clients: <client> N passed, M failed` per client and a total
# line; exits non-zero if any check failed.
# S3_CLIENTS="boto3 rclone" runs only those clients. S3_CLIENTS_ENDPOINT=http://HOST:PORT runs
# the clients against a server already running there instead of starting one (to try the scripts
# against another S3 implementation; the second-user checks then fail).
# Unless S3_CLIENTS_ENDPOINT is set, an HTTPS pass follows the server checks: a certificate from
# `corestore admin tls-cert`, a second server with --tls-cert/--tls-key on a fresh data directory,
# tls.sh against it (client `tls`), and that server's own checks (`tls-server`).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${CORESTORE_BIN:-target/release/corestore}}
clients=${S3_CLIENTS:-awscli boto3 rclone s3cmd}
venv=${S3_CLIENTS_VENV:-$HOME/.cache/corestore-s3-clients/venv}
client_timeout_s=900

die() { echo "s3-clients: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_clients() {
  local missing=() tool
  for tool in rclone s3cmd curl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ||
      die "apt-get install ${missing[*]} failed"
  fi
  for tool in rclone s3cmd curl; do command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"; done
  if [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
      rm -rf "$venv"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv ||
        die "python3 -m venv failed and python3-venv could not be installed"
      python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    fi
  fi
  # boto3 >= 1.36 sends CRC32 checksums by default; awscli 1.37 is its contemporary. awscli v2 is
  # not on PyPI.
  "$venv/bin/pip" install -q --disable-pip-version-check 'boto3>=1.36,<2' 'awscli>=1.37,<2' ||
    die "pip install boto3 awscli failed"
  "$venv/bin/python" -c 'import boto3' || die "boto3 does not import"
  "$venv/bin/aws" --version >/dev/null 2>&1 || die "aws does not run"
  echo "s3-clients: $("$venv/bin/aws" --version 2>&1 | head -1); boto3 $("$venv/bin/python" -c 'import boto3; print(boto3.__version__)')"
  echo "s3-clients: $(rclone version 2>/dev/null | head -1); s3cmd $(s3cmd --version 2>&1 | awk '{print $3}'); $(curl --version | head -1 | cut -d' ' -f1-2)"
}

server_pid=
data=
kill_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  server_pid=
}
cleanup() {
  kill_server
  [ -n "$data" ] && rm -rf "$data"
}
trap cleanup EXIT

add_second_user() {
  "$bin" admin user add --data "$data/store" --access-key "$AK2" --secret-key "$SK2" >>"$data/admin.log" 2>&1
}

# start_server [STORE [TLS_DIR]]: starts the server on STORE (default $data/store) on a free port
# with the root keys AK/SK: plain HTTP, or HTTPS with TLS_DIR/cert.pem and TLS_DIR/key.pem; its
# output goes to $data/server.{out,err} (HTTPS: $data/tls-server.{out,err}). Sets server_pid and
# endpoint. Returns 1, showing the server's output, if it does not say where it listens within 60 s.
start_server() {
  local store=${1:-$data/store} tls_dir=${2:-} scheme=http log=$data/server tls=()
  if [ -n "$tls_dir" ]; then
    scheme=https log=$data/tls-server
    tls=(--tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem")
  fi
  # Emptied here, not only by the background job's redirection: a restart would otherwise read
  # the previous server's listening line (and port) if the job had not truncated the file yet.
  : >"$log.out"
  : >"$log.err"
  # CORESTORE_TLS_CERT/KEY in the environment would make the plain server an HTTPS one.
  env -u CORESTORE_TLS_CERT -u CORESTORE_TLS_KEY "$bin" serve --data "$store" --listen 127.0.0.1:0 --cores 2 \
    --access-key "$AK" --secret-key "$SK" "${tls[@]}" >"$log.out" 2>"$log.err" &
  server_pid=$!
  local deadline=$((SECONDS + 60))
  endpoint=
  while [ -z "$endpoint" ]; do
    endpoint=$(grep -m1 -oE "corestore: listening on $scheme://127\\.0\\.0\\.1:[0-9]+" "$log.out" | sed 's/.* //')
    [ -n "$endpoint" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "--- server stdout"; cat "$log.out"; echo "--- server stderr"; tail -50 "$log.err"
      echo "corestore serve did not print 'corestore: listening on $scheme://127.0.0.1:PORT' within 60 s"
      return 1
    fi
    sleep 0.2
  done
  echo "s3-clients: corestore serve (pid $server_pid) at $endpoint"
}

# The first start, with the second user added before it, or, if that fails (the store may have
# to exist first), once the server listens; the boto3 script reports a user that could not be added.
first_start() {
  [ -x "$bin" ] || die "no corestore binary at $bin (build it: cargo build --release -p tools)"
  bin=$(realpath "$bin")
  mkdir -p "$data/store"
  second_user_added=0
  add_second_user && second_user_added=1
  start_server || die "the server did not start"
  [ $second_user_added = 1 ] || { add_second_user && second_user_added=1; }
}

# stop_server: SIGTERM must end the server within 20 s, exiting 0 or by the signal itself (143:
# every acknowledged write is already durable, so dying on SIGTERM loses nothing).
stop_server() {
  kill -TERM "$server_pid" || return 1
  local deadline=$((SECONDS + 20))
  while kill -0 "$server_pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "still running 20 s after SIGTERM"; return 1; }
    sleep 0.2
  done
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=
  case $rc in
    0 | 143) ;;
    *) echo "exit status $rc after SIGTERM"; return 1 ;;
  esac
}

# server_check NAME COMMAND...: counted in server_passed/server_failed, shown as $server_label.
server_label=server
server_check() {
  local name=$1
  shift
  if "$@"; then
    server_passed=$((server_passed + 1))
    echo "  ok   $server_label: $name"
  else
    server_failed=$((server_failed + 1))
    echo "  FAIL $server_label: $name"
  fi
}

server_alive() { kill -0 "$server_pid" 2>/dev/null || { echo "the server exited before the clients finished"; return 1; }; }

put_survivor() {
  head -c $((3 << 20)) /dev/urandom >"$data/survivor"
  aws --endpoint-url "$endpoint" s3 mb s3://restart-check >/dev/null &&
    aws --endpoint-url "$endpoint" s3 cp --quiet "$data/survivor" s3://restart-check/survivor
}

# After a restart on the same data directory, the object is there, byte for byte, and the user
# added with `admin user add` still works.
restarted_keeps_data() {
  start_server >"$data/restart.log" || { cat "$data/restart.log"; return 1; }
  aws --endpoint-url "$endpoint" s3 cp --quiet s3://restart-check/survivor "$data/survivor.back" &&
    cmp "$data/survivor" "$data/survivor.back" &&
    AWS_ACCESS_KEY_ID=$AK2 AWS_SECRET_ACCESS_KEY=$SK2 aws --endpoint-url "$endpoint" s3 ls >/dev/null &&
    stop_server
}

# Server checks after the clients: still up, SIGTERM, data kept over a restart.
server_checks() {
  server_passed=0
  server_failed=0
  server_check "ran through every client" server_alive
  if [ "$server_failed" = 0 ]; then
    server_check "put an object before the restart" put_survivor
    server_check "stops on SIGTERM within 20 s (exit 0 or 143)" stop_server
    [ "$server_failed" = 0 ] && server_check "restart on the same data: object and second user kept" restarted_keeps_data
  fi
  echo "s3-clients: server $server_passed passed, $server_failed failed"
  total_passed=$((total_passed + server_passed))
  total_failed=$((total_failed + server_failed))
}

# tls_server_checks: the HTTPS pass. admin tls-cert writes a certificate (and refuses to write
# over it), a second server serves HTTPS with it on a fresh data directory, tls.sh runs against it
# trusting only that certificate, and the server is still up after it and stops on SIGTERM.
make_tls_cert() {
  "$bin" admin tls-cert --out "$data/tls" >>"$data/admin.log" 2>&1 || { tail -5 "$data/admin.log"; return 1; }
  [ -s "$data/tls/cert.pem" ] && [ -s "$data/tls/key.pem" ] || { echo "no cert.pem and key.pem in $data/tls"; return 1; }
  cp "$data/tls/cert.pem" "$data/tls-cert.first"
  if "$bin" admin tls-cert --out "$data/tls" >>"$data/admin.log" 2>&1; then
    echo "a second admin tls-cert --out $data/tls succeeded"; return 1
  fi
  cmp "$data/tls/cert.pem" "$data/tls-cert.first" || { echo "cert.pem was overwritten"; return 1; }
}

start_tls_server() {
  mkdir -p "$data/tls-store"
  start_server "$data/tls-store" "$data/tls" || return 1
  case $endpoint in https://*) ;; *) echo "not an https endpoint: $endpoint"; return 1 ;; esac
}

tls_server_checks() {
  server_label=tls-server
  server_passed=0
  server_failed=0
  kill_server # one left over from a failed restart check
  server_check "admin tls-cert writes cert.pem and key.pem, and will not overwrite them" make_tls_cert
  [ "$server_failed" = 0 ] && server_check "serve --tls-cert/--tls-key on a fresh data directory listens on https://" start_tls_server
  if [ "$server_failed" = 0 ]; then
    export S3_ENDPOINT=$endpoint S3_CA_CERT=$data/tls/cert.pem
    run_client tls
    server_check "ran through the tls checks" server_alive
    [ "$server_failed" = 0 ] && server_check "stops on SIGTERM within 20 s (exit 0 or 143)" stop_server
  else
    echo "s3-clients: tls 0 passed, 1 failed"
    echo "  (not run: no HTTPS server)"
    total_failed=$((total_failed + 1))
  fi
  echo "s3-clients: tls-server $server_passed passed, $server_failed failed"
  total_passed=$((total_passed + server_passed))
  total_failed=$((total_failed + server_failed))
}

run_client() {
  local client=$1 script out rc
  case $client in
    awscli) script=(bash "$here/awscli.sh") ;;
    boto3) script=("$venv/bin/python" "$here/boto3_test.py") ;;
    rclone) script=(bash "$here/rclone.sh") ;;
    s3cmd) script=(bash "$here/s3cmd.sh") ;;
    tls) script=(bash "$here/tls.sh") ;;
    *) die "unknown client $client" ;;
  esac
  echo "s3-clients: running $client"
  out="$data/$client.out"
  mkdir -p "$data/$client"
  (cd "$data/$client" && TMPDIR="$data/$client" timeout "$client_timeout_s" "${script[@]}") 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E "^s3-clients: $client [0-9]+ passed, [0-9]+ failed$" "$out" | tail -1)
  if [ -z "$line" ]; then
    echo "s3-clients: $client 0 passed, 1 failed"
    echo "  (the script exited with status $rc before its summary line; 124: past its $client_timeout_s s limit)"
    total_failed=$((total_failed + 1))
    return
  fi
  local p f
  p=$(echo "$line" | awk '{print $3}')
  f=$(echo "$line" | awk '{print $5}')
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  if [ "$f" = 0 ] && [ "$rc" != 0 ]; then
    echo "s3-clients: $client exited with status $rc after reporting no failure"
    total_failed=$((total_failed + 1))
  fi
  rm -rf "${data:?}/$client"
}

for client in $clients; do
  case $client in
    awscli | boto3 | rclone | s3cmd) ;;
    tls) die "tls is not picked in S3_CLIENTS: it runs after the clients unless S3_CLIENTS_ENDPOINT is set" ;;
    *) die "unknown client $client" ;;
  esac
done
install_clients
export PATH="$venv/bin:$PATH"
data=$(mktemp -d /tmp/corestore-s3-clients.XXXXXX)
AK=s3clientsAK SK=s3clientsSecretKey0123456789 AK2=s3clientsAK2 SK2=s3clientsSecretKey2-abcdefghij
total_passed=0
total_failed=0
if [ -n "${S3_CLIENTS_ENDPOINT:-}" ]; then
  endpoint=$S3_CLIENTS_ENDPOINT
  second_user_added=0
  echo "s3-clients: using the server at $endpoint"
else
  first_start
fi

# The clients see only these settings: no profile, config or credentials from the machine.
# awscli v1 and boto3 presign with SigV2 unless told s3v4: the checks use SigV4, except boto3's SigV2 one.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_CA_BUNDLE
export S3_ENDPOINT=$endpoint AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$data/aws-config" AWS_SHARED_CREDENTIALS_FILE="$data/aws-credentials"
: >"$AWS_SHARED_CREDENTIALS_FILE"
cat >"$AWS_CONFIG_FILE" <<'EOF'
[default]
region = us-east-1
s3 =
    addressing_style = path
    signature_version = s3v4
EOF
if [ "$second_user_added" = 1 ]; then
  export S3_SECOND_ACCESS_KEY=$AK2 S3_SECOND_SECRET_KEY=$SK2
else
  export S3_SECOND_USER_ERROR="corestore admin user add failed: $(tail -5 "$data/admin.log" 2>/dev/null)"
fi

for client in $clients; do run_client "$client"; done

if [ -z "${S3_CLIENTS_ENDPOINT:-}" ]; then
  server_checks
  tls_server_checks
  if [ $total_failed != 0 ]; then
    echo "--- server stderr (last 40 lines)"
    tail -40 "$data/server.err"
    if [ -f "$data/tls-server.err" ]; then
      echo "--- HTTPS server stderr (last 40 lines)"
      tail -40 "$data/tls-server.err"
    fi
  fi
fi

echo "s3-clients: $total_passed passed, $total_failed failed"
[ $total_failed = 0 ]
