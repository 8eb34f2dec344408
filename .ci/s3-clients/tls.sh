#!/usr/bin/env bash
# HTTPS: awscli, boto3, rclone, s3cmd and curl against S3_ENDPOINT (https://), each trusting only
# S3_CA_CERT, the self-signed certificate `corestore admin tls-cert` wrote for the server. Run by
# run.sh against a second server started with --tls-cert/--tls-key, with the same credentials and
# AWS config as the plain-HTTP clients. No check turns certificate verification off: the one
# negative check is curl left to its default trust store, which must refuse the certificate.
set -uo pipefail
CLIENT=tls
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

case ${S3_ENDPOINT:-} in
  https://*) ;;
  *) echo "tls.sh: S3_ENDPOINT must be an https:// URL, not '${S3_ENDPOINT:-}' (run.sh sets it)"; exit 1 ;;
esac
ca=${S3_CA_CERT:-}
[ -f "$ca" ] || { echo "tls.sh: S3_CA_CERT must name the server's cert.pem, not '$ca' (run.sh sets it)"; exit 1; }
hostport=${S3_ENDPOINT#https://}
hostport=${hostport%/}
# Only the options below may make a client trust a certificate.
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR

work=$(mktemp -d)
aws() { AWS_CA_BUNDLE=$ca command aws --endpoint-url "$S3_ENDPOINT" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
B=tls-awscli

t_awscli_mb() {
  aws s3 mb "s3://$B"
  has "$B" "$(aws s3 ls | awk '{print $3}')"
}

# 20 MiB is above awscli's 8 MiB multipart threshold: parts of 8, 8 and 4 MiB up, ranged GETs down.
t_awscli_cp() {
  random_file "$work/big.bin" $((20 << 20))
  aws s3 cp --quiet "$work/big.bin" "s3://$B/big.bin"
  aws s3 cp --quiet "s3://$B/big.bin" "$work/big.back"
  cmp "$work/big.bin" "$work/big.back"
  expect_eq "ETag (3-part multipart upload)" "$(aws s3api head-object --bucket "$B" --key big.bin | json 'd["ETag"]')" \
    "$(multipart_etag "$work/big.bin" $((8 << 20)))"
  expect_eq "aws s3 ls s3://$B/" "$(aws s3 ls "s3://$B/" | awk '{print $3, $4}')" "$((20 << 20)) big.bin"
}

# Without AWS_CA_BUNDLE awscli uses its own bundle, which does not hold the self-signed certificate.
t_awscli_untrusted() {
  expect_fail "aws s3 ls without AWS_CA_BUNDLE" command aws --endpoint-url "$S3_ENDPOINT" s3 ls
  has_re 'CERTIFICATE_VERIFY_FAILED' "$fail_output" || { echo "not a certificate failure: $fail_output"; return 1; }
}

t_boto3_put_get() {
  random_file "$work/boto3.bin" $(((3 << 20) + 12345))
  python3 "$here/tls_boto3.py" put-get tls-boto3 "dir/obj one.bin" "$work/boto3.bin"
}

t_boto3_presign() {
  local url
  url=$(python3 "$here/tls_boto3.py" presign tls-boto3 "dir/obj one.bin")
  case $url in "$S3_ENDPOINT"/*X-Amz-Signature=*) ;; *) echo "not a SigV4 https URL: $url"; return 1 ;; esac
  curl -fsS --cacert "$ca" -o "$work/presigned.out" "$url"
  cmp "$work/boto3.bin" "$work/presigned.out"
}

t_boto3_delete() {
  python3 "$here/tls_boto3.py" delete tls-boto3 "dir/obj one.bin"
}

# A few files (one of 12 MiB, sent in three 5 MiB parts) up and back down.
t_rclone() {
  rclone_conf "$work/rclone.conf"
  local rcl=(rclone --config "$work/rclone.conf" --ca-cert "$ca" --retries 1 --low-level-retries 1
    --s3-upload-cutoff 5M --s3-chunk-size 5M)
  mkdir -p "$work/rsrc/sub"
  echo "hello over https" >"$work/rsrc/hello.txt"
  : >"$work/rsrc/empty"
  random_file "$work/rsrc/sub/a.bin" 100000
  random_file "$work/rsrc/sub/b c.bin" 777
  random_file "$work/rsrc/twelve.bin" $((12 << 20))
  "${rcl[@]}" mkdir cs:tls-rclone
  "${rcl[@]}" copy "$work/rsrc" cs:tls-rclone/tree
  "${rcl[@]}" copy cs:tls-rclone/tree "$work/rback"
  diff -r "$work/rsrc" "$work/rback"
  expect_eq "rclone lsf -R --files-only" "$("${rcl[@]}" lsf -R --files-only cs:tls-rclone/tree | LC_ALL=C sort)" \
    "$(cd "$work/rsrc" && find . -type f -printf '%P\n' | LC_ALL=C sort)"
}

t_s3cmd() {
  s3cmd_conf "$work/s3cfg" "check_ssl_certificate = True" "check_ssl_hostname = True"
  local s=(s3cmd -c "$work/s3cfg" --host="$hostport" --host-bucket="$hostport" --ssl --ca-certs="$ca")
  random_file "$work/s3cmd.bin" $(((1 << 20) + 7))
  "${s[@]}" mb s3://tls-s3cmd
  "${s[@]}" put "$work/s3cmd.bin" s3://tls-s3cmd/file.bin
  "${s[@]}" get s3://tls-s3cmd/file.bin "$work/s3cmd.back"
  cmp "$work/s3cmd.bin" "$work/s3cmd.back"
  expect_eq "s3cmd ls" "$("${s[@]}" ls s3://tls-s3cmd | awk '{print $3, $4}')" "$(((1 << 20) + 7)) s3://tls-s3cmd/file.bin"
}

# curl's own TLS (OpenSSL) to the address and to the name `localhost` the certificate also holds;
# no credentials, so S3 answers with its XML AccessDenied.
t_curl_anonymous() {
  local url code
  for url in "$S3_ENDPOINT/" "https://localhost:${hostport##*:}/"; do
    code=$(curl -sS --cacert "$ca" -o "$work/anon.xml" -w '%{http_code}' "$url")
    expect_eq "HTTP status of an anonymous GET $url" "$code" 403
    has_re '<Code>AccessDenied</Code>' "$(cat "$work/anon.xml")" || { echo "no AccessDenied in: $(cat "$work/anon.xml")"; return 1; }
  done
}

# The negative check: curl with its default trust store must refuse the self-signed certificate
# (exit 60: peer certificate cannot be authenticated with known CA certificates).
t_curl_untrusted() {
  local rc=0
  curl -sS -o /dev/null "$S3_ENDPOINT/" 2>"$work/untrusted.err" || rc=$?
  cat "$work/untrusted.err"
  expect_eq "curl exit status without --cacert" "$rc" 60
}

# Plain HTTP to the TLS port gets no HTTP answer: curl sees no status line, and with --http0.9
# (take whatever comes back) what came back is not an HTTP response.
t_plain_http() {
  local code rc=0
  code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://$hostport/") || rc=$?
  [ "$rc" != 0 ] || { echo "curl http://$hostport/ succeeded (status $code)"; return 1; }
  expect_eq "HTTP status over plain HTTP" "$code" 000
  code=$(curl -sS -m 10 --http0.9 -o "$work/plain.raw" -w '%{http_code}' "http://$hostport/") || true
  local start
  start=$(head -c 5 "$work/plain.raw" | od -An -c | tr -d ' \n')
  echo "the first bytes back: $(head -c 16 "$work/plain.raw" | od -An -tx1)"
  if [ "$start" = "HTTP/" ]; then echo "an HTTP response over plain HTTP"; return 1; fi
}

check "awscli: s3 mb (AWS_CA_BUNDLE)" t_awscli_mb
check "awscli: s3 cp 20 MiB multipart up and down (cmp, ETag), ls" t_awscli_cp
check "awscli: refused without AWS_CA_BUNDLE" t_awscli_untrusted
check "boto3: put (CRC32 trailer, STREAMING-UNSIGNED-PAYLOAD-TRAILER), get, range, head, list (verify=cert.pem)" t_boto3_put_get
check "boto3: presigned GET fetched with curl --cacert" t_boto3_presign
check "boto3: delete_object, then head_object 404" t_boto3_delete
check "rclone --ca-cert: copy a 5-file folder (12 MiB multipart) up and down" t_rclone
check "s3cmd --ssl --ca-certs: mb, put, get, ls" t_s3cmd
check "curl --cacert: anonymous GET gets S3 AccessDenied (403), by address and by localhost" t_curl_anonymous
check "curl without --cacert: certificate refused (exit 60)" t_curl_untrusted
check "plain http:// to the TLS port: no HTTP answer" t_plain_http
rm -rf "$work"
summary
