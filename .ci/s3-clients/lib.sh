# Sourced by the shell client scripts: one `check NAME FUNCTION` per check, then `summary`.
# Each check runs in its own subshell with `set -euo pipefail`, so the first failing command
# fails the check; its output is shown only when it fails.
# Needs CLIENT (the summary's client name) set before sourcing.

passed=0
failed=0

check() {
  local name=$1 log rc
  shift
  log=$(mktemp)
  (set -euo pipefail; "$@") >"$log" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    echo "  ok   $CLIENT: $name"
  else
    failed=$((failed + 1))
    echo "  FAIL $CLIENT: $name (exit $rc)"
    tail -n 25 "$log" | sed 's/^/       | /'
  fi
  rm -f "$log"
}

summary() {
  echo "s3-clients: $CLIENT $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# expect_eq WHAT ACTUAL EXPECTED: fails, showing both, unless equal byte for byte.
expect_eq() {
  if [ "$2" != "$3" ]; then
    echo "$1 differs"
    diff <(printf '%s\n' "$3") <(printf '%s\n' "$2") | sed 's/^</expected:/; s/^>/actual:  /' || true
    return 1
  fi
}

# expect_fail WHAT COMMAND...: fails unless COMMAND exits non-zero; keeps its output in $fail_output.
expect_fail() {
  local what=$1
  shift
  if fail_output=$("$@" 2>&1); then
    echo "$what: expected a failure, got success: $fail_output"
    return 1
  fi
}

# random_file PATH BYTES: incompressible content, so every byte is checked by cmp.
random_file() {
  head -c "$2" /dev/urandom >"$1"
}

# multipart_etag FILE PART_BYTES: the ETag S3 gives a multipart upload of FILE in parts of
# PART_BYTES: the MD5 of the parts' binary MD5s, then "-" and the number of parts.
multipart_etag() {
  python3 - "$1" "$2" <<'EOF'
import hashlib, sys
path, part = sys.argv[1], int(sys.argv[2])
digests = []
with open(path, "rb") as f:
    while chunk := f.read(part):
        digests.append(hashlib.md5(chunk).digest())
print('"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests)))
EOF
}

# make_tree DIR: ~50 files in nested folders, sizes 0 B to 300 KiB, names with spaces, plus
# signs, non-ASCII letters and an equals sign (each must survive SigV4's URI encoding).
make_tree() {
  local dir=$1 i
  mkdir -p "$dir/docs/deep/er" "$dir/img" "$dir/with space" "$dir/ünï"
  : >"$dir/empty.txt"
  echo "hello" >"$dir/hello.txt"
  for i in $(seq 1 12); do random_file "$dir/docs/d$i.bin" $((i * 997)); done
  for i in $(seq 1 10); do random_file "$dir/docs/deep/er/e$i.dat" $((i * 30011)); done
  for i in $(seq 1 10); do random_file "$dir/img/p$i.raw" $((i * 7001 + 3)); done
  for i in $(seq 1 8); do random_file "$dir/with space/file $i+plus.txt" $((i * 101)); done
  for i in $(seq 1 6); do random_file "$dir/ünï/naïve-$i=eq.txt" $((i * 4099)); done
  random_file "$dir/img/large.bin" $((300 * 1024))
}

# has LINE TEXT: TEXT has LINE as one of its lines. has_re REGEX TEXT: a line of TEXT matches.
# (Not `cmd | grep -q`: grep leaving early can kill cmd with SIGPIPE, failing the pipeline.)
has() { grep -qxF -- "$1" <<<"$2"; }
has_re() { grep -qE -- "$1" <<<"$2"; }

# rclone_conf FILE: an rclone config with one remote, `cs`, for $S3_ENDPOINT with the test keys.
rclone_conf() {
  cat >"$1" <<EOF
[cs]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $S3_ENDPOINT
region = us-east-1
force_path_style = true
EOF
}

# s3cmd_conf FILE [LINE...]: an s3cmd config with the test keys (SigV4), and LINEs after them.
s3cmd_conf() {
  local file=$1
  shift
  cat >"$file" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
bucket_location = us-east-1
signature_v2 = False
EOF
  local line
  for line in "$@"; do echo "$line" >>"$file"; done
}
