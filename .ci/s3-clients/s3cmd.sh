#!/usr/bin/env bash
# s3cmd (path style, no TLS, SigV4) against S3_ENDPOINT: mb, put small and 20 MiB (multipart in
# s3cmd's default 15 MiB parts), get, ls, info, del, rb. Run by run.sh, which sets the endpoint
# and credentials.
set -uo pipefail
CLIENT=s3cmd
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

work=$(mktemp -d)
host=${S3_ENDPOINT#http://}
s3cmd_conf "$work/s3cfg"
s3cmd() { command s3cmd -c "$work/s3cfg" --host="$host" --host-bucket="$host" --no-ssl "$@"; }
B=s3://s3cmd-bucket

t_mb() {
  s3cmd mb "$B"
  has "$B" "$(s3cmd ls | awk '{print $3}')"
}

t_put() {
  echo "small file for s3cmd" >"$work/small.txt"
  random_file "$work/big.bin" $((20 << 20))
  s3cmd put --mime-type=text/plain --add-header=x-amz-meta-color:blue "$work/small.txt" "$B/small.txt"
  # The progress lines show the 20 MiB file going up in two parts (15 + 5 MiB).
  local out
  out=$(s3cmd put --progress "$work/big.bin" "$B/dir/big.bin" | tr '\r' '\n')
  has_re '\[part 2 of 2, 5MB\]' "$out" || { echo "not two parts: $out"; return 1; }
  # `ls --list-md5` shows the ETag, or for a multipart upload the MD5 s3cmd keeps in metadata.
  expect_eq "MD5 of small.txt" "$(s3cmd ls --list-md5 "$B/small.txt" | awk '{print $4}')" \
    "$(md5sum <"$work/small.txt" | cut -d' ' -f1)"
  expect_eq "MD5 of dir/big.bin" "$(s3cmd ls --list-md5 "$B/dir/big.bin" | awk '{print $4}')" \
    "$(md5sum <"$work/big.bin" | cut -d' ' -f1)"
}

t_get() {
  s3cmd get "$B/small.txt" "$work/small.back"
  s3cmd get "$B/dir/big.bin" "$work/big.back"
  cmp "$work/small.txt" "$work/small.back"
  cmp "$work/big.bin" "$work/big.back"
}

t_ls() {
  expect_eq "s3cmd ls $B" "$(s3cmd ls "$B" | awk '{print $1 == "DIR" ? "DIR " $2 : $3 " " $4}')" "DIR $B/dir/
21 $B/small.txt"
  expect_eq "s3cmd ls --recursive $B" "$(s3cmd ls --recursive "$B" | awk '{print $3, $4}')" "$((20 << 20)) $B/dir/big.bin
21 $B/small.txt"
}

t_info() {
  local out
  out=$(s3cmd info "$B/small.txt")
  echo "$out"
  expect_eq "File size" "$(echo "$out" | sed -n 's/^ *File size: *//p')" 21
  expect_eq "MIME type" "$(echo "$out" | sed -n 's/^ *MIME type: *//p')" text/plain
  expect_eq "MD5 sum" "$(echo "$out" | sed -n 's/^ *MD5 sum: *//p')" "$(md5sum <"$work/small.txt" | cut -d' ' -f1)"
  expect_eq "x-amz-meta-color" "$(echo "$out" | sed -n 's/^ *x-amz-meta-color: *//p')" blue
  # s3cmd keeps the file's MD5 in its own metadata, which is how it checks multipart downloads.
  out=$(s3cmd info "$B/dir/big.bin")
  echo "$out"
  expect_eq "File size" "$(echo "$out" | sed -n 's/^ *File size: *//p')" $((20 << 20))
  expect_eq "md5 in x-amz-meta-s3cmd-attrs" \
    "$(echo "$out" | sed -n 's/^ *x-amz-meta-s3cmd-attrs: .*md5:\([0-9a-f]*\).*/\1/p')" \
    "$(md5sum <"$work/big.bin" | cut -d' ' -f1)"
}

t_del() {
  s3cmd del "$B/small.txt"
  expect_eq "s3cmd ls --recursive after del" "$(s3cmd ls --recursive "$B" | awk '{print $4}')" "$B/dir/big.bin"
  expect_fail "get of a deleted object" s3cmd get --force "$B/small.txt" "$work/deleted.back"
}

t_rb() {
  expect_fail "rb of a non-empty bucket" s3cmd rb "$B"
  has_re BucketNotEmpty "$fail_output" || { echo "no BucketNotEmpty in: $fail_output"; return 1; }
  s3cmd del "$B/dir/big.bin"
  s3cmd rb "$B"
  if has "$B" "$(s3cmd ls | awk '{print $3}')"; then echo "$B still listed"; return 1; fi
}

check "mb" t_mb
check "put small and 20 MiB (multipart, 15 MiB parts)" t_put
check "get byte-identical" t_get
check "ls" t_ls
check "info (size, type, MD5, metadata)" t_info
check "del" t_del
check "rb (refused while not empty)" t_rb
rm -rf "$work"
summary
