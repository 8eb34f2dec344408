#!/usr/bin/env bash
# awscli (v1, from pip) against S3_ENDPOINT: high-level `aws s3` commands and `aws s3api` calls.
# Run by run.sh, which sets the endpoint, credentials and an AWS config with path-style
# addressing. Each check compares exact bytes or exact listings.
set -uo pipefail
CLIENT=awscli
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

B=cli-bucket
work=$(mktemp -d)
aws() { command aws --endpoint-url "$S3_ENDPOINT" "$@"; }
# jq is not assumed: JSON fields are read with python3.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

t_mb() {
  aws s3 mb "s3://$B"
  aws s3api head-bucket --bucket "$B"
  has "$B" "$(aws s3 ls | awk '{print $3}')"
}

t_cp_small() {
  echo "small file, $(date)" >"$work/small.txt"
  aws s3 cp "$work/small.txt" "s3://$B/small.txt"
  aws s3 cp "s3://$B/small.txt" "$work/small.back"
  cmp "$work/small.txt" "$work/small.back"
}

# 40 MiB is above awscli's 8 MiB multipart threshold: 5 parts of 8 MiB, uploaded concurrently;
# the download is ranged GETs. The ETag proves the upload was multipart with those parts.
t_cp_40mib() {
  random_file "$work/big.bin" $((40 << 20))
  aws s3 cp "$work/big.bin" "s3://$B/big.bin"
  aws s3 cp "s3://$B/big.bin" "$work/big.back"
  cmp "$work/big.bin" "$work/big.back"
  local head
  head=$(aws s3api head-object --bucket "$B" --key big.bin)
  expect_eq "ContentLength" "$(echo "$head" | json 'd["ContentLength"]')" $((40 << 20))
  expect_eq "ETag" "$(echo "$head" | json 'd["ETag"]')" "$(multipart_etag "$work/big.bin" $((8 << 20)))"
}

t_ls_prefix() {
  local k
  for k in ls/a/1.txt ls/a/2.txt ls/a/b/3.txt ls/a/b/c/4.txt ls/ab.txt ls/c/5.txt; do
    printf '%s' "$k" | aws s3 cp - "s3://$B/$k"
  done
  # `aws s3 ls` prints "PRE dir/" for common prefixes and "date time size name" for objects.
  local got
  got=$(aws s3 ls "s3://$B/ls/a/" | awk '$1 == "PRE" {print "PRE", $2; next} {print $3, $4}')
  expect_eq "s3 ls s3://$B/ls/a/" "$got" "PRE b/
10 1.txt
10 2.txt"
  got=$(aws s3 ls "s3://$B/ls/a" | awk '$1 == "PRE" {print "PRE", $2; next} {print $3, $4}')
  expect_eq "s3 ls s3://$B/ls/a" "$got" "PRE a/
9 ab.txt"
  got=$(aws s3 ls --recursive "s3://$B/ls/" | awk '{print $4}')
  expect_eq "s3 ls --recursive s3://$B/ls/" "$got" "ls/a/1.txt
ls/a/2.txt
ls/a/b/3.txt
ls/a/b/c/4.txt
ls/ab.txt
ls/c/5.txt"
}

t_sync() {
  make_tree "$work/tree"
  local n out
  n=$(find "$work/tree" -type f | wc -l)
  out=$(aws s3 sync --no-progress "$work/tree" "s3://$B/tree/")
  expect_eq "upload lines of the first sync" "$(echo "$out" | grep -c '^upload: ')" "$n"
  aws s3 sync --no-progress "s3://$B/tree/" "$work/tree.back"
  diff -r "$work/tree" "$work/tree.back"
  expect_eq "objects under tree/" "$(aws s3 ls --recursive "s3://$B/tree/" | wc -l)" "$n"
}

t_sync_again() {
  local out
  out=$(aws s3 sync --no-progress "$work/tree" "s3://$B/tree/")
  expect_eq "output of a second sync (nothing to transfer)" "$out" ""
  out=$(aws s3 sync --no-progress "s3://$B/tree/" "$work/tree.back")
  expect_eq "output of a second sync down" "$out" ""
}

t_rm_recursive() {
  aws s3 rm --recursive "s3://$B/tree/" >/dev/null
  expect_eq "objects under tree/ after rm --recursive" "$(aws s3 ls --recursive "s3://$B/tree/")" ""
  # Other prefixes are untouched.
  expect_eq "objects under ls/" "$(aws s3 ls --recursive "s3://$B/ls/" | wc -l)" 6
}

t_put_metadata() {
  echo "with metadata" >"$work/meta.txt"
  aws s3api put-object --bucket "$B" --key meta.txt --body "$work/meta.txt" \
    --content-type text/plain --metadata color=blue,owner=ci-team >/dev/null
  local head
  head=$(aws s3api head-object --bucket "$B" --key meta.txt)
  expect_eq "Metadata" "$(echo "$head" | json 'sorted(d["Metadata"].items())')" "[('color', 'blue'), ('owner', 'ci-team')]"
  expect_eq "ContentType" "$(echo "$head" | json 'd["ContentType"]')" "text/plain"
  expect_eq "ContentLength" "$(echo "$head" | json 'd["ContentLength"]')" 14
  expect_eq "ETag" "$(echo "$head" | json 'd["ETag"]')" "\"$(md5sum <"$work/meta.txt" | cut -d' ' -f1)\""
}

# 25 keys read 10 at a time (--max-items, client side) in pages of 4 (--page-size: MaxKeys on
# the wire, so the server's continuation tokens are used too).
t_list_paging() {
  local i keys="" page token got=""
  for i in $(seq -w 1 25); do
    aws s3api put-object --bucket "$B" --key "page/k$i" >/dev/null
    keys+="page/k$i"$'\n'
  done
  page=$(aws s3api list-objects-v2 --bucket "$B" --prefix page/ --max-items 10 --page-size 4)
  got+=$(echo "$page" | json '"\n".join(o["Key"] for o in d["Contents"])')$'\n'
  token=$(echo "$page" | json 'd["NextToken"]')
  page=$(aws s3api list-objects-v2 --bucket "$B" --prefix page/ --max-items 10 --page-size 4 --starting-token "$token")
  expect_eq "keys in page 2" "$(echo "$page" | json 'len(d["Contents"])')" 10
  got+=$(echo "$page" | json '"\n".join(o["Key"] for o in d["Contents"])')$'\n'
  token=$(echo "$page" | json 'd["NextToken"]')
  page=$(aws s3api list-objects-v2 --bucket "$B" --prefix page/ --max-items 10 --page-size 4 --starting-token "$token")
  got+=$(echo "$page" | json '"\n".join(o["Key"] for o in d["Contents"])')$'\n'
  expect_eq "NextToken after the last page" "$(echo "$page" | json 'd.get("NextToken")')" None
  expect_eq "keys listed in three pages" "$got" "$keys"
}

t_get_range() {
  aws s3api get-object --bucket "$B" --key big.bin --range bytes=1000000-1000999 "$work/range.out" >"$work/range.json"
  cmp "$work/range.out" <(tail -c +1000001 "$work/big.bin" | head -c 1000)
  expect_eq "ContentRange" "$(json 'd["ContentRange"]' <"$work/range.json")" "bytes 1000000-1000999/$((40 << 20))"
  aws s3api get-object --bucket "$B" --key big.bin --range bytes=-100 "$work/suffix.out" >/dev/null
  cmp "$work/suffix.out" <(tail -c 100 "$work/big.bin")
}

t_delete_objects() {
  local k
  for k in del/x del/y del/z; do aws s3api put-object --bucket "$B" --key "$k" >/dev/null; done
  local out
  out=$(aws s3api delete-objects --bucket "$B" \
    --delete '{"Objects":[{"Key":"del/x"},{"Key":"del/y"},{"Key":"del/never-existed"}]}')
  # S3 reports a key that did not exist as deleted too.
  expect_eq "Deleted" "$(echo "$out" | json 'sorted(o["Key"] for o in d["Deleted"])')" "['del/never-existed', 'del/x', 'del/y']"
  expect_eq "Errors" "$(echo "$out" | json 'd.get("Errors")')" None
  expect_eq "left under del/" "$(aws s3 ls --recursive "s3://$B/del/" | awk '{print $4}')" "del/z"
}

t_presign() {
  local url
  url=$(aws s3 presign "s3://$B/small.txt" --expires-in 300)
  curl -fsS -o "$work/presigned.out" "$url"
  cmp "$work/small.txt" "$work/presigned.out"
  # The same URL with its signature changed must be refused.
  local bad code
  bad=$(echo "$url" | sed -E 's/(X-Amz-Signature=)[0-9a-f]/\1x/')
  [ "$bad" != "$url" ] || { echo "not a SigV4 URL: $url"; return 1; }
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$bad")
  expect_eq "HTTP status of a tampered presigned URL" "$code" 403
}

t_rb() {
  expect_fail "rb of a non-empty bucket" aws s3 rb "s3://$B"
  has_re BucketNotEmpty "$fail_output" || { echo "no BucketNotEmpty in: $fail_output"; return 1; }
  aws s3 rm --recursive "s3://$B" >/dev/null
  aws s3 rb "s3://$B"
  expect_fail "head-bucket of the removed bucket" aws s3api head-bucket --bucket "$B"
  if has "$B" "$(aws s3 ls | awk '{print $3}')"; then echo "$B still listed"; return 1; fi
}

# SSE-S3: `cp --sse AES256`, and head-object says so; the download needs nothing.
t_sse_s3() {
  random_file "$work/sse-s3.bin" $((100 << 10))
  aws s3 cp --sse AES256 "$work/sse-s3.bin" "s3://$B/sse/s3.bin"
  expect_eq "ServerSideEncryption" "$(aws s3api head-object --bucket "$B" --key sse/s3.bin | json 'd.get("ServerSideEncryption")')" AES256
  aws s3 cp "s3://$B/sse/s3.bin" "$work/sse-s3.back"
  cmp "$work/sse-s3.bin" "$work/sse-s3.back"
}

# SSE-C: 20 MiB up (3 parts) and down (ranged GETs) with the same --sse-c options; head-object
# with the key shows its MD5; a download without the key is refused.
t_sse_c() {
  head -c 32 /dev/urandom >"$work/sse-c.key"
  random_file "$work/sse-c.bin" $((20 << 20))
  local sse_c=(--sse-c AES256 --sse-c-key "fileb://$work/sse-c.key") head
  aws s3 cp "${sse_c[@]}" "$work/sse-c.bin" "s3://$B/sse/c.bin"
  aws s3 cp "${sse_c[@]}" "s3://$B/sse/c.bin" "$work/sse-c.back"
  cmp "$work/sse-c.bin" "$work/sse-c.back"
  head=$(aws s3api head-object --bucket "$B" --key sse/c.bin --sse-customer-algorithm AES256 --sse-customer-key "fileb://$work/sse-c.key")
  expect_eq "SSECustomerAlgorithm" "$(echo "$head" | json 'd.get("SSECustomerAlgorithm")')" AES256
  expect_eq "SSECustomerKeyMD5" "$(echo "$head" | json 'd.get("SSECustomerKeyMD5")')" \
    "$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.md5(open(sys.argv[1],"rb").read()).digest()).decode())' "$work/sse-c.key")"
  expect_eq "ContentLength" "$(echo "$head" | json 'd["ContentLength"]')" $((20 << 20))
  expect_fail "download without the key" aws s3 cp "s3://$B/sse/c.bin" "$work/sse-c.nokey"
  has_re "400|Bad Request|InvalidRequest" "$fail_output" || { echo "not a 400: $fail_output"; return 1; }
}

check "s3 mb" t_mb
check "s3 cp up/down, small file" t_cp_small
check "s3 cp up/down, 40 MiB multipart (cmp, ETag)" t_cp_40mib
check "s3 ls with prefixes" t_ls_prefix
check "s3 sync of a 49-file tree up and down" t_sync
check "s3 sync again transfers nothing" t_sync_again
check "s3 rm --recursive" t_rm_recursive
check "s3api put-object --metadata, head-object" t_put_metadata
check "s3api list-objects-v2 --max-items/--page-size paging" t_list_paging
check "s3api get-object --range" t_get_range
check "s3api delete-objects" t_delete_objects
check "s3 presign + curl" t_presign
check "s3 cp --sse AES256, head-object ServerSideEncryption" t_sse_s3
check "s3 cp --sse-c up and down (20 MiB multipart, cmp), head-object key MD5, no key refused" t_sse_c
check "s3 rb (refused while not empty)" t_rb
rm -rf "$work"
summary
