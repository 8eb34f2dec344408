"""boto3 over HTTPS against S3_ENDPOINT, trusting only S3_CA_CERT (Config verify=, nothing else).

Run by tls.sh, one command per check; each exits non-zero with the reason on a failure:
  tls_boto3.py put-get BUCKET KEY FILE   create BUCKET, put FILE with boto3's default checksum
                                          (over HTTPS: a CRC32 trailer on an aws-chunked body sent
                                          as STREAMING-UNSIGNED-PAYLOAD-TRAILER), get, ranged get,
                                          head, list_objects_v2
  tls_boto3.py presign BUCKET KEY        print a presigned GET URL (tls.sh fetches it with curl)
  tls_boto3.py delete BUCKET KEY         delete_object, then head_object must answer 404
"""

import base64
import hashlib
import os
import sys
import zlib

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
CA_CERT = os.environ["S3_CA_CERT"]


def client():
    assert ENDPOINT.startswith("https://"), f"S3_ENDPOINT is not https: {ENDPOINT}"
    cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", config=cfg, verify=CA_CERT)


def expect_eq(what, actual, expected):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


def put_get(bucket, key, path):
    s3 = client()
    with open(path, "rb") as f:
        body = f.read()
    s3.create_bucket(Bucket=bucket)
    sent = []
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(
        {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}))
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    h = sent[-1]
    # No checksum asked for: boto3 >= 1.36 adds a CRC32, and over HTTPS sends it as a trailer
    # of an unsigned aws-chunked body (plain HTTP gets it as a header instead).
    expect_eq("x-amz-content-sha256 sent", h.get("x-amz-content-sha256"), "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    expect_eq("x-amz-trailer sent", h.get("x-amz-trailer"), "x-amz-checksum-crc32")
    expect_eq("Content-Encoding sent", h.get("content-encoding"), "aws-chunked")
    expect_eq("x-amz-decoded-content-length sent", h.get("x-amz-decoded-content-length"), str(len(body)))
    expect_eq("put ETag", put["ETag"], md5_etag(body))
    # The server kept the CRC32 it read from the trailer.
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    expect_eq("get body", got["Body"].read(), body)
    expect_eq("get ETag", got["ETag"], md5_etag(body))
    expect_eq("get ChecksumCRC32", got.get("ChecksumCRC32"), crc32_b64(body))
    got = s3.get_object(Bucket=bucket, Key=key, Range="bytes=1000000-1000999")
    expect_eq("ranged get body", got["Body"].read(), body[1000000:1001000])
    expect_eq("ranged get ContentRange", got["ContentRange"], f"bytes 1000000-1000999/{len(body)}")
    expect_eq("ranged get status", got["ResponseMetadata"]["HTTPStatusCode"], 206)
    head = s3.head_object(Bucket=bucket, Key=key)
    expect_eq("head ContentLength", head["ContentLength"], len(body))
    expect_eq("head ETag", head["ETag"], md5_etag(body))
    listed = s3.list_objects_v2(Bucket=bucket)
    expect_eq("list_objects_v2 keys and sizes",
              [(o["Key"], o["Size"], o["ETag"]) for o in listed.get("Contents", [])],
              [(key, len(body), md5_etag(body))])


def presign(bucket, key):
    print(client().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300))


def delete(bucket, key):
    s3 = client()
    s3.delete_object(Bucket=bucket, Key=key)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        expect_eq("head after delete: HTTP status", e.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        expect_eq("head after delete: error code", e.response["Error"]["Code"], "404")
    else:
        raise AssertionError("head_object of the deleted key succeeded")
    expect_eq("list_objects_v2 after delete", s3.list_objects_v2(Bucket=bucket).get("Contents", []), [])


COMMANDS = {"put-get": put_get, "presign": presign, "delete": delete}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: tls_boto3.py {{{'|'.join(COMMANDS)}}} ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
