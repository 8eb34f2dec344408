"""boto3 against S3_ENDPOINT: object calls (SigV4, and SigV2 in t_sigv2), multipart transfers, checksums, server-side encryption, listing, versioning, object lock, tags, form uploads, CORS, ACLs, bucket policies, lifecycle rules, errors.

Run by run.sh, which sets S3_ENDPOINT, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and, when it could
add one, a second user (S3_SECOND_ACCESS_KEY/S3_SECOND_SECRET_KEY). Each check compares exact
bytes, keys or error codes. Prints `s3-clients: boto3 N passed, M failed`; exits 1 on a failure.
"""

import base64
import hashlib
import os
import sys
import tempfile
import traceback
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
MIB = 1 << 20
BUCKET = "boto3-bucket"
LIST_BUCKET = "boto3-list"
WORK = tempfile.mkdtemp()


def client(access_key=None, secret_key=None, **config):
    # Presigned URLs default to SigV2 in boto3 unless signature_version says s3v4.
    cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                 retries={"max_attempts": 1}, **config)
    kwargs = {}
    if access_key:
        kwargs = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", config=cfg, **kwargs)


s3 = client()


def sigv2_client(access_key=None, secret_key=None):
    # signature_version='s3' is botocore's HmacV1Auth (SigV2), as Ceph's s3-tests get_v2_client().
    cfg = Config(s3={"addressing_style": "path"}, signature_version="s3", retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", config=cfg,
                        aws_access_key_id=access_key or os.environ["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=secret_key or os.environ["AWS_SECRET_ACCESS_KEY"])


def expect_eq(what, actual, expected):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect_error(what, code, status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        expect_eq(f"{what}: error code", e.response["Error"]["Code"], code)
        expect_eq(f"{what}: HTTP status", e.response["ResponseMetadata"]["HTTPStatusCode"], status)
        return e
    raise AssertionError(f"{what}: expected {code}, the call succeeded")


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


def multipart_etag(data, part_size):
    parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return '"%s-%d"' % (hashlib.md5(joined).hexdigest(), len(parts))


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32_b64(data):
    return b64(zlib.crc32(data).to_bytes(4, "big"))


class SentHeaders:
    """Records the headers of each request an operation sends (the checksum it chose)."""

    def __init__(self, c, operation):
        self.headers = []
        c.meta.events.register(f"before-send.s3.{operation}", self._record)

    def _record(self, request, **_):
        self.headers.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                             for k, v in request.headers.items()})


# ---- checks -------------------------------------------------------------------------------------

def t_create_bucket():
    s3.create_bucket(Bucket=BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert BUCKET in names, f"{BUCKET} not in list_buckets: {names}"
    s3.head_bucket(Bucket=BUCKET)


def t_put_get_head_delete():
    body = os.urandom(100_000)
    s3.put_object(Bucket=BUCKET, Key="obj/a.bin", Body=body, ContentType="application/x-test",
                  Metadata={"color": "blue", "n": "42"})
    got = s3.get_object(Bucket=BUCKET, Key="obj/a.bin")
    expect_eq("body", got["Body"].read(), body)
    expect_eq("get ETag", got["ETag"], md5_etag(body))
    head = s3.head_object(Bucket=BUCKET, Key="obj/a.bin")
    expect_eq("ContentLength", head["ContentLength"], len(body))
    expect_eq("ContentType", head["ContentType"], "application/x-test")
    expect_eq("Metadata", head["Metadata"], {"color": "blue", "n": "42"})
    expect_eq("head ETag", head["ETag"], md5_etag(body))
    # An overwrite replaces the bytes and the metadata.
    s3.put_object(Bucket=BUCKET, Key="obj/a.bin", Body=b"second")
    got = s3.get_object(Bucket=BUCKET, Key="obj/a.bin")
    expect_eq("overwritten body", got["Body"].read(), b"second")
    expect_eq("overwritten Metadata", got["Metadata"], {})
    # A zero-byte object.
    s3.put_object(Bucket=BUCKET, Key="obj/empty", Body=b"")
    expect_eq("empty body", s3.get_object(Bucket=BUCKET, Key="obj/empty")["Body"].read(), b"")
    s3.delete_object(Bucket=BUCKET, Key="obj/a.bin")
    s3.delete_object(Bucket=BUCKET, Key="obj/empty")
    expect_error("head of a deleted key", "404", 404, s3.head_object, Bucket=BUCKET, Key="obj/a.bin")
    # Deleting a missing key succeeds (204), as S3 does.
    s3.delete_object(Bucket=BUCKET, Key="obj/never-existed")


def t_transfer_30mib():
    data = os.urandom(30 * MIB)
    src = os.path.join(WORK, "big.bin")
    dst = os.path.join(WORK, "big.back")
    with open(src, "wb") as f:
        f.write(data)
    cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)
    s3.upload_file(src, BUCKET, "big.bin", Config=cfg)
    head = s3.head_object(Bucket=BUCKET, Key="big.bin")
    expect_eq("ContentLength", head["ContentLength"], len(data))
    expect_eq("ETag (4 parts of 8 MiB)", head["ETag"], multipart_etag(data, 8 * MIB))
    s3.download_file(BUCKET, "big.bin", dst, Config=cfg)  # ranged GETs on 4 threads
    with open(dst, "rb") as f:
        back = f.read()
    expect_eq("downloaded length", len(back), len(data))
    assert back == data, "downloaded bytes differ"


def t_multipart_crc32():
    # boto3 >= 1.36's upload_file creates the upload with a CRC32 checksum and sends each part's;
    # the object's checksum is then the composite of the parts' (or, asked, the full object's).
    data = os.urandom(20 * MIB)
    src = os.path.join(WORK, "crc.bin")
    with open(src, "wb") as f:
        f.write(data)
    cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
    s3.upload_file(src, BUCKET, "crc/multipart", Config=cfg)
    head = s3.head_object(Bucket=BUCKET, Key="crc/multipart", ChecksumMode="ENABLED")
    parts = [data[i:i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    if head.get("ChecksumType") == "FULL_OBJECT":
        expected = crc32_b64(data)
    else:
        expect_eq("ChecksumType", head.get("ChecksumType"), "COMPOSITE")
        joined = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
        expected = "%s-%d" % (crc32_b64(joined), len(parts))
    expect_eq("ChecksumCRC32 of the multipart object", head.get("ChecksumCRC32"), expected)
    got = s3.get_object(Bucket=BUCKET, Key="crc/multipart", ChecksumMode="ENABLED")
    expect_eq("ChecksumCRC32 of get_object", got.get("ChecksumCRC32"), expected)
    assert got["Body"].read() == data, "multipart bytes differ"


def t_default_crc32():
    body = b"checksummed by default " * 1000
    sent = SentHeaders(s3, "PutObject")
    s3.put_object(Bucket=BUCKET, Key="crc/default", Body=body)
    h = sent.headers[-1]
    # boto3 >= 1.36 sends a CRC32 unasked: as a header, or as a trailer of an aws-chunked body.
    carried = h.get("x-amz-checksum-crc32") or h.get("x-amz-trailer")
    assert carried, f"boto3 sent no CRC32: {sorted(h)}"
    if "x-amz-checksum-crc32" in h:
        expect_eq("sent CRC32", h["x-amz-checksum-crc32"], crc32_b64(body))
    got = s3.get_object(Bucket=BUCKET, Key="crc/default")
    expect_eq("body", got["Body"].read(), body)


def t_crc32_returned():
    body = b"checksummed by default " * 1000
    got = s3.get_object(Bucket=BUCKET, Key="crc/default", ChecksumMode="ENABLED")
    expect_eq("ChecksumCRC32 of get_object", got.get("ChecksumCRC32"), crc32_b64(body))
    got["Body"].read()  # botocore checks the body against it
    head = s3.head_object(Bucket=BUCKET, Key="crc/default", ChecksumMode="ENABLED")
    expect_eq("ChecksumCRC32 of head_object", head.get("ChecksumCRC32"), crc32_b64(body))


def t_wrong_crc32_refused():
    expect_error("put with a wrong CRC32", "BadDigest", 400, s3.put_object, Bucket=BUCKET,
                     Key="crc/wrong", Body=b"some bytes", ChecksumCRC32=crc32_b64(b"other bytes"))
    expect_error("get of the refused key", "NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key="crc/wrong")


def t_sha256():
    body = os.urandom(200_000)
    want = b64(hashlib.sha256(body).digest())
    put = s3.put_object(Bucket=BUCKET, Key="sha/obj", Body=body, ChecksumAlgorithm="SHA256")
    expect_eq("put ChecksumSHA256", put.get("ChecksumSHA256"), want)
    got = s3.get_object(Bucket=BUCKET, Key="sha/obj", ChecksumMode="ENABLED")
    expect_eq("get ChecksumSHA256", got.get("ChecksumSHA256"), want)
    expect_eq("body", got["Body"].read(), body)


def t_copy_object():
    body = os.urandom(50_000)
    s3.put_object(Bucket=BUCKET, Key="copy/src", Body=body, ContentType="image/png", Metadata={"k": "v"})
    out = s3.copy_object(Bucket=BUCKET, Key="copy/dst", CopySource={"Bucket": BUCKET, "Key": "copy/src"})
    expect_eq("CopyObjectResult ETag", out["CopyObjectResult"]["ETag"], md5_etag(body))
    got = s3.get_object(Bucket=BUCKET, Key="copy/dst")
    expect_eq("copied body", got["Body"].read(), body)
    expect_eq("copied Metadata", got["Metadata"], {"k": "v"})
    expect_eq("copied ContentType", got["ContentType"], "image/png")
    s3.copy_object(Bucket=BUCKET, Key="copy/dst2", CopySource={"Bucket": BUCKET, "Key": "copy/src"},
                   MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/plain")
    head = s3.head_object(Bucket=BUCKET, Key="copy/dst2")
    expect_eq("replaced Metadata", head["Metadata"], {"new": "yes"})
    expect_eq("replaced ContentType", head["ContentType"], "text/plain")
    # The source is unchanged.
    expect_eq("source body", s3.get_object(Bucket=BUCKET, Key="copy/src")["Body"].read(), body)


def t_sse_c():
    # boto3 base64-encodes a raw SSECustomerKey and sends its MD5 itself.
    key, other = os.urandom(32), os.urandom(32)
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    key_md5 = b64(hashlib.md5(key).digest())
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=BUCKET, Key="ssec/obj", Body=body, **sse)
    expect_eq("put SSE-C headers", (put.get("SSECustomerAlgorithm"), put.get("SSECustomerKeyMD5"), put.get("ServerSideEncryption")),
              ("AES256", key_md5, None))
    assert put["ETag"] != md5_etag(body), "an SSE-C ETag must not be the MD5 of the data"
    got = s3.get_object(Bucket=BUCKET, Key="ssec/obj", **sse)
    expect_eq("get SSE-C headers", (got.get("SSECustomerAlgorithm"), got.get("SSECustomerKeyMD5")), ("AES256", key_md5))
    expect_eq("body", got["Body"].read(), body)
    got = s3.get_object(Bucket=BUCKET, Key="ssec/obj", Range="bytes=1000-70999", **sse)
    expect_eq("ranged body", got["Body"].read(), body[1000:71000])
    head = s3.head_object(Bucket=BUCKET, Key="ssec/obj", **sse)
    expect_eq("head", (head["ContentLength"], head["ETag"], head.get("SSECustomerAlgorithm"), head.get("SSECustomerKeyMD5")),
              (len(body), put["ETag"], "AES256", key_md5))
    expect_error("get with another key", "AccessDenied", 403, s3.get_object, Bucket=BUCKET, Key="ssec/obj",
                 SSECustomerAlgorithm="AES256", SSECustomerKey=other)
    expect_error("get without the key", "InvalidRequest", 400, s3.get_object, Bucket=BUCKET, Key="ssec/obj")
    expect_error("head without the key", "400", 400, s3.head_object, Bucket=BUCKET, Key="ssec/obj")
    # Multipart: upload_file and download_file (ranged GETs) pass the key on every request.
    data = os.urandom(12 * MIB + 5)
    src, dst = os.path.join(WORK, "ssec.bin"), os.path.join(WORK, "ssec.back")
    with open(src, "wb") as f:
        f.write(data)
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    s3.upload_file(src, BUCKET, "ssec/big.bin", ExtraArgs=sse, Config=cfg)
    head = s3.head_object(Bucket=BUCKET, Key="ssec/big.bin", **sse)
    expect_eq("multipart length", head["ContentLength"], len(data))
    assert head["ETag"].endswith('-3"'), f"not a 3-part ETag: {head['ETag']}"
    s3.download_file(BUCKET, "ssec/big.bin", dst, ExtraArgs=sse, Config=cfg)
    with open(dst, "rb") as f:
        assert f.read() == data, "downloaded SSE-C bytes differ"
    expect_error("download_file without the key", "400", 400, s3.download_file, BUCKET, "ssec/big.bin", dst)
    # Copied to SSE-S3: readable without a key.
    out = s3.copy_object(Bucket=BUCKET, Key="ssec/copy", CopySource={"Bucket": BUCKET, "Key": "ssec/big.bin"},
                         CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key, ServerSideEncryption="AES256")
    expect_eq("copy ServerSideEncryption", out.get("ServerSideEncryption"), "AES256")
    expect_eq("copied body", s3.get_object(Bucket=BUCKET, Key="ssec/copy")["Body"].read(), data)


def t_sse_s3():
    body = os.urandom(50_000)
    put = s3.put_object(Bucket=BUCKET, Key="sses3/obj", Body=body, ServerSideEncryption="AES256")
    expect_eq("put ServerSideEncryption", put.get("ServerSideEncryption"), "AES256")
    expect_eq("put ETag (the MD5)", put["ETag"], md5_etag(body))
    expect_eq("head ServerSideEncryption", s3.head_object(Bucket=BUCKET, Key="sses3/obj").get("ServerSideEncryption"), "AES256")
    got = s3.get_object(Bucket=BUCKET, Key="sses3/obj")
    expect_eq("get", (got.get("ServerSideEncryption"), got["Body"].read()), ("AES256", body))
    # Bucket default encryption, in a bucket of its own.
    b = "boto3-sse-default"
    s3.create_bucket(Bucket=b)
    expect_error("get_bucket_encryption before any", "ServerSideEncryptionConfigurationNotFoundError", 404,
                 s3.get_bucket_encryption, Bucket=b)
    s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
    rules = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"]
    expect_eq("stored rule", (rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], rules[0].get("BucketKeyEnabled")),
              ("AES256", True))
    put = s3.put_object(Bucket=b, Key="plain-request", Body=body)
    expect_eq("default applied to put_object", put.get("ServerSideEncryption"), "AES256")
    src = os.path.join(WORK, "sses3.bin")
    data = os.urandom(11 * MIB)
    with open(src, "wb") as f:
        f.write(data)
    s3.upload_file(src, b, "multipart", Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    head = s3.head_object(Bucket=b, Key="multipart")
    expect_eq("default applied to upload_file", (head.get("ServerSideEncryption"), head["ContentLength"]), ("AES256", len(data)))
    expect_eq("multipart body", s3.get_object(Bucket=b, Key="multipart")["Body"].read(), data)
    s3.delete_bucket_encryption(Bucket=b)
    expect_error("get_bucket_encryption after delete", "ServerSideEncryptionConfigurationNotFoundError", 404,
                 s3.get_bucket_encryption, Bucket=b)
    put = s3.put_object(Bucket=b, Key="after-delete", Body=b"plain")
    expect_eq("no default after delete", put.get("ServerSideEncryption"), None)
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ["plain-request", "multipart", "after-delete"]]})
    s3.delete_bucket(Bucket=b)


def list_keys():
    # Numbers without padding, so byte order differs from numeric order; a few non-ASCII keys
    # (byte order of UTF-8 is code point order) and keys that sort around "/".
    keys = [f"k/{i}" for i in range(1490)]
    keys += ["k/é", "k/日本", "k/Z", "k/a b", "k/a+b", "k/a-b", "k/a/", "k/a/b", "k/a0", "k/~"]
    return keys


def t_list_paginator():
    s3.create_bucket(Bucket=LIST_BUCKET)
    keys = list_keys()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=LIST_BUCKET, Key=k, Body=k.encode()), keys))
    want = sorted(keys, key=lambda k: k.encode())
    paginator = s3.get_paginator("list_objects_v2")
    for page_size, pages_want in ((1000, 2), (100, 15), (7, 215)):
        pages = list(paginator.paginate(Bucket=LIST_BUCKET, PaginationConfig={"PageSize": page_size}))
        got = [o["Key"] for p in pages for o in p.get("Contents", [])]
        expect_eq(f"number of pages of {page_size}", len(pages), pages_want)
        if got != want:
            first = next(i for i, (a, b) in enumerate(zip(got + [None] * len(want), want)) if a != b)
            raise AssertionError(f"pages of {page_size}: {len(got)} keys, first difference at {first}: "
                                 f"got {got[first:first + 3]}, expected {want[first:first + 3]}")
        for p in pages[:-1]:
            expect_eq("KeyCount", p["KeyCount"], page_size)
            expect_eq("IsTruncated", p["IsTruncated"], True)
        expect_eq("IsTruncated of the last page", pages[-1]["IsTruncated"], False)
    sizes = {o["Key"]: o["Size"] for p in paginator.paginate(Bucket=LIST_BUCKET) for o in p["Contents"]}
    expect_eq("sizes", sizes, {k: len(k.encode()) for k in keys})


def t_list_delimiter():
    out = s3.list_objects_v2(Bucket=LIST_BUCKET, Prefix="k/a", Delimiter="/")
    expect_eq("CommonPrefixes", [p["Prefix"] for p in out.get("CommonPrefixes", [])], ["k/a/"])
    expect_eq("Contents", [o["Key"] for o in out.get("Contents", [])], ["k/a b", "k/a+b", "k/a-b", "k/a0"])
    out = s3.list_objects_v2(Bucket=LIST_BUCKET, StartAfter="k/998", MaxKeys=3)
    expect_eq("StartAfter k/998", [o["Key"] for o in out["Contents"]], ["k/999", "k/Z", "k/a b"])


def t_delete_objects():
    keys = list_keys()
    for i in range(0, len(keys), 1000):
        batch = keys[i:i + 1000]
        out = s3.delete_objects(Bucket=LIST_BUCKET, Delete={"Objects": [{"Key": k} for k in batch]})
        expect_eq("Errors", out.get("Errors", []), [])
        expect_eq("Deleted", sorted(d["Key"] for d in out["Deleted"]), sorted(batch))
    expect_eq("KeyCount after delete_objects", s3.list_objects_v2(Bucket=LIST_BUCKET)["KeyCount"], 0)
    # Quiet mode reports only errors.
    s3.put_object(Bucket=LIST_BUCKET, Key="q", Body=b"q")
    out = s3.delete_objects(Bucket=LIST_BUCKET, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    expect_eq("Deleted in quiet mode", out.get("Deleted", []), [])
    s3.delete_bucket(Bucket=LIST_BUCKET)


def t_presigned():
    body = os.urandom(10_000)
    s3.put_object(Bucket=BUCKET, Key="presigned/get me", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presigned/get me"},
                                    ExpiresIn=300)
    with urllib.request.urlopen(url) as r:
        expect_eq("presigned GET body", r.read(), body)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned/put"},
                                    ExpiresIn=300)
    req = urllib.request.Request(url, data=b"put through a presigned URL", method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req) as r:
        expect_eq("presigned PUT status", r.status, 200)
    got = s3.get_object(Bucket=BUCKET, Key="presigned/put")["Body"].read()
    expect_eq("body put through a presigned URL", got, b"put through a presigned URL")
    # A tampered URL is refused.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presigned/get me"},
                                    ExpiresIn=300)
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:len(url)]
    try:
        urllib.request.urlopen(bad)
        raise AssertionError("a tampered presigned URL was served")
    except urllib.error.HTTPError as e:
        expect_eq("status of a tampered presigned URL", e.code, 403)


def t_sigv2():
    v2 = sigv2_client()
    sent = SentHeaders(v2, "PutObject")
    bucket = "boto3-sigv2"
    v2.create_bucket(Bucket=bucket)
    body = os.urandom(50_000)
    key = "dir/a key+b&c.bin"
    v2.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-test",
                  ContentMD5=b64(hashlib.md5(body).digest()), Metadata={"color": "blue", "shape": "round"})
    auth = sent.headers[-1].get("authorization", "")
    assert auth.startswith("AWS "), f"the put was not signed with SigV2: {auth!r}"
    got = v2.get_object(Bucket=bucket, Key=key)
    expect_eq("SigV2 get body", got["Body"].read(), body)
    expect_eq("SigV2 get metadata", got["Metadata"], {"color": "blue", "shape": "round"})
    expect_eq("SigV2 get content type", got["ContentType"], "application/x-test")
    expect_eq("SigV2 get ETag", got["ETag"], md5_etag(body))
    expect_eq("SigV2 head length", v2.head_object(Bucket=bucket, Key=key)["ContentLength"], len(body))
    expect_error("SigV2 put with a wrong Content-MD5", "BadDigest", 400, v2.put_object, Bucket=bucket,
                 Key="bad-md5", Body=b"abc", ContentMD5=b64(hashlib.md5(b"abd").digest()))
    expect_eq("SigV2 list_objects", [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]], [key])
    expect_eq("SigV2 list_objects_v2 prefix", v2.list_objects_v2(Bucket=bucket, Prefix="dir/")["KeyCount"], 1)
    # Sub-resources are signed: ?acl and ?tagging.
    v2.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    expect_eq("SigV2 tags", v2.get_object_tagging(Bucket=bucket, Key=key)["TagSet"], [{"Key": "k", "Value": "v"}])
    v2.get_bucket_acl(Bucket=bucket)
    # A presigned GET made by the SigV2 client: AWSAccessKeyId, Expires, Signature.
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url and "Signature=" in url, f"not a SigV2 presigned URL: {url}"
    with urllib.request.urlopen(url) as r:
        expect_eq("SigV2 presigned GET body", r.read(), body)
    bad = url.replace("Signature=", "Signature=A")
    try:
        urllib.request.urlopen(bad)
        raise AssertionError("a tampered SigV2 presigned URL was served")
    except urllib.error.HTTPError as e:
        expect_eq("status of a tampered SigV2 presigned URL", e.code, 403)
    wrong = sigv2_client(os.environ["AWS_ACCESS_KEY_ID"], "not-the-secret-key")
    expect_error("SigV2 with a wrong secret", "SignatureDoesNotMatch", 403, wrong.list_objects, Bucket=bucket)
    unknown = sigv2_client("AKNOSUCHUSER", "whatever-secret")
    expect_error("SigV2 with an unknown access key", "InvalidAccessKeyId", 403, unknown.list_buckets)
    v2.delete_object(Bucket=bucket, Key=key)
    expect_error("SigV2 get of the deleted key", "NoSuchKey", 404, v2.get_object, Bucket=bucket, Key=key)
    v2.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in v2.list_buckets()["Buckets"]], f"{bucket} still listed"


def t_error_codes():
    expect_error("get of a missing key", "NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key="no/such/key")
    expect_error("get in a missing bucket", "NoSuchBucket", 404, s3.get_object,
                 Bucket="no-such-bucket-here", Key="k")
    expect_error("list of a missing bucket", "NoSuchBucket", 404, s3.list_objects_v2,
                 Bucket="no-such-bucket-here")
    expect_error("delete of a non-empty bucket", "BucketNotEmpty", 409, s3.delete_bucket, Bucket=BUCKET)
    expect_error("head of a missing bucket", "404", 404, s3.head_bucket, Bucket="no-such-bucket-here")
    expect_error("bucket name with capitals", "InvalidBucketName", 400, s3.create_bucket, Bucket="Bad_Name")


def t_conditional_writes():
    # Many threads race to create one key with IfNoneMatch="*": exactly one wins.
    key = "cond/lock"
    def attempt(i):
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"owner %d" % i + b"x" * (1 << 20), IfNoneMatch="*")
            return i
        except ClientError as e:
            code = e.response["Error"]["Code"]
            assert code in ("PreconditionFailed", "ConditionalRequestConflict"), code
            return None
    with ThreadPoolExecutor(max_workers=8) as pool:
        winners = [w for w in pool.map(attempt, range(8)) if w is not None]
    assert len(winners) == 1, f"{len(winners)} writers created the key"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.startswith(b"owner %d" % winners[0]), body[:16]
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"replaced", IfMatch=etag)
    expect_error("If-Match on a replaced ETag", "PreconditionFailed", 412, s3.put_object,
                 Bucket=BUCKET, Key=key, Body=b"late", IfMatch=etag)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"replaced"
    s3.delete_object(Bucket=BUCKET, Key=key)


def t_list_object_versions():
    s3.create_bucket(Bucket="boto3-versions")
    for key, body in (("v/a", b"1"), ("v/b", b"22"), ("v/a", b"333"), ("v/c", b""), ("v/a", b"4444")):
        s3.put_object(Bucket="boto3-versions", Key=key, Body=body)
    out = s3.list_object_versions(Bucket="boto3-versions")
    got = [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in out.get("Versions", [])]
    expect_eq("Versions of an unversioned bucket", got,
              [("v/a", "null", True, 4), ("v/b", "null", True, 2), ("v/c", "null", True, 0)])
    expect_eq("DeleteMarkers", out.get("DeleteMarkers", []), [])
    for key in ("v/a", "v/b", "v/c"):
        s3.delete_object(Bucket="boto3-versions", Key=key)
    s3.delete_bucket(Bucket="boto3-versions")


def nuke_versions(bucket):
    """Empties a bucket as s3-tests' nuke_bucket does: every version and marker, by id."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            out = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
            expect_eq("errors deleting versions", out.get("Errors", []), [])


def t_versioning():
    bucket = "boto3-versioning"
    s3.create_bucket(Bucket=bucket)
    expect_eq("status before", s3.get_bucket_versioning(Bucket=bucket).get("Status"), None)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expect_eq("status", s3.get_bucket_versioning(Bucket=bucket)["Status"], "Enabled")
    # s3-tests' test_versioning_obj_create_read_remove: five versions, each read back by id.
    ids = []
    for i in range(5):
        out = s3.put_object(Bucket=bucket, Key="testobj", Body=b"content-%d" % i)
        ids.append(out["VersionId"])
    expect_eq("ids distinct", len(set(ids)), 5)
    listed = s3.list_object_versions(Bucket=bucket, Prefix="testobj")["Versions"]
    expect_eq("newest first", [v["VersionId"] for v in listed], ids[::-1])
    expect_eq("latest", [v["IsLatest"] for v in listed], [True, False, False, False, False])
    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="testobj", VersionId=vid)
        expect_eq("version body", got["Body"].read(), b"content-%d" % i)
        expect_eq("version header", got["VersionId"], vid)
    # Removing the newest version makes the one before current.
    s3.delete_object(Bucket=bucket, Key="testobj", VersionId=ids[4])
    expect_eq("current after removal", s3.get_object(Bucket=bucket, Key="testobj")["Body"].read(), b"content-3")
    # A plain delete is a marker; removing the marker restores the object.
    out = s3.delete_object(Bucket=bucket, Key="testobj")
    expect_eq("DeleteMarker", out["DeleteMarker"], True)
    expect_error("get behind a marker", "NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="testobj")
    s3.delete_object(Bucket=bucket, Key="testobj", VersionId=out["VersionId"])
    expect_eq("restored", s3.get_object(Bucket=bucket, Key="testobj")["Body"].read(), b"content-3")
    # test_versioning_obj_plain_null_version_removal: the object from before is the null version.
    expect_eq("null version", s3.get_object(Bucket=bucket, Key="plain", VersionId="null")["Body"].read(),
              b"before versioning")
    s3.delete_object(Bucket=bucket, Key="plain", VersionId="null")
    expect_error("removed null version", "NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="plain")
    # Suspended: puts replace the one null version.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    for body in (b"null 1", b"null 2"):
        expect_eq("no id named", "VersionId" in s3.put_object(Bucket=bucket, Key="testobj", Body=body), False)
    listed = s3.list_object_versions(Bucket=bucket, Prefix="testobj")["Versions"]
    expect_eq("versions with one null", [v["VersionId"] for v in listed], ["null"] + ids[3::-1])
    # test_versioning_multi_object_delete, then empty the bucket the way s3-tests does.
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "testobj", "VersionId": ids[0]},
                                                               {"Key": "testobj", "VersionId": ids[1]}]})
    expect_eq("deleted by id", sorted(d["VersionId"] for d in out["Deleted"]), sorted(ids[:2]))
    expect_error("not empty", "BucketNotEmpty", 409, s3.delete_bucket, Bucket=bucket)
    nuke_versions(bucket)
    s3.delete_bucket(Bucket=bucket)


def t_object_lock():
    import datetime
    bucket = "boto3-object-lock"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    expect_eq("versioning", s3.get_bucket_versioning(Bucket=bucket)["Status"], "Enabled")
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=conf)
    expect_eq("configuration", s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"], conf)
    bad = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}}
    expect_error("zero days", "InvalidRetentionPeriod", 400, s3.put_object_lock_configuration, Bucket=bucket,
                 ObjectLockConfiguration=bad)
    expect_error("suspend", "InvalidBucketState", 409, s3.put_bucket_versioning, Bucket=bucket,
                 VersioningConfiguration={"Status": "Suspended"})
    # s3-tests' test_object_lock_uploading_obj and delete_object_with_retention.
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    out = s3.put_object(Bucket=bucket, Key="file1", Body=b"abc", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")
    version = out["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="file1")
    expect_eq("mode", head["ObjectLockMode"], "GOVERNANCE")
    expect_eq("legal hold", head["ObjectLockLegalHoldStatus"], "ON")
    expect_eq("until (seconds)", int(head["ObjectLockRetainUntilDate"].timestamp()), int(until.timestamp()))
    expect_error("delete under legal hold", "AccessDenied", 403, s3.delete_object, Bucket=bucket, Key="file1",
                 VersionId=version, BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=bucket, Key="file1", LegalHold={"Status": "OFF"})
    expect_error("delete under retention", "AccessDenied", 403, s3.delete_object, Bucket=bucket, Key="file1",
                 VersionId=version)
    s3.delete_object(Bucket=bucket, Key="file1", VersionId=version, BypassGovernanceRetention=True)
    # Default retention: every version of the default's mode; emptied with the bypass.
    vid = s3.put_object(Bucket=bucket, Key="file2", Body=b"x")["VersionId"]
    expect_eq("default mode", s3.get_object_retention(Bucket=bucket, Key="file2")["Retention"]["Mode"], "GOVERNANCE")
    s3.delete_object(Bucket=bucket, Key="file2", VersionId=vid, BypassGovernanceRetention=True)
    s3.delete_bucket(Bucket=bucket)


def t_second_user():
    if "S3_SECOND_USER_ERROR" in os.environ:
        raise AssertionError(os.environ["S3_SECOND_USER_ERROR"])
    ak, sk = os.environ["S3_SECOND_ACCESS_KEY"], os.environ["S3_SECOND_SECRET_KEY"]
    second = client(ak, sk)
    second.create_bucket(Bucket="boto3-second-user")
    second.put_object(Bucket="boto3-second-user", Key="k", Body=b"second user")
    expect_eq("body", second.get_object(Bucket="boto3-second-user", Key="k")["Body"].read(), b"second user")
    second.delete_object(Bucket="boto3-second-user", Key="k")
    second.delete_bucket(Bucket="boto3-second-user")


def t_acls():
    """As Ceph's s3-tests check ACLs: canned ACLs, an AccessControlPolicy body naming the second
    user by canonical ID (its access key), grant headers, and who may then do what."""
    if "S3_SECOND_USER_ERROR" in os.environ:
        raise AssertionError(os.environ["S3_SECOND_USER_ERROR"])
    ak, alt_ak = os.environ["AWS_ACCESS_KEY_ID"], os.environ["S3_SECOND_ACCESS_KEY"]
    alt = client(alt_ak, os.environ["S3_SECOND_SECRET_KEY"])
    bucket = "boto3-acl"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="foo", Body=b"foocontent")

    def grants(response):
        return sorted((g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"])
                      for g in response["Grants"])

    acl = s3.get_bucket_acl(Bucket=bucket)
    expect_eq("default owner", (acl["Owner"]["ID"], acl["Owner"]["DisplayName"]), (ak, ak))
    expect_eq("default grants", grants(acl), [("CanonicalUser", ak, "FULL_CONTROL")])
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    expect_eq("public-read grants", grants(s3.get_bucket_acl(Bucket=bucket)),
              [("CanonicalUser", ak, "FULL_CONTROL"), ("Group", "http://acs.amazonaws.com/groups/global/AllUsers", "READ")])
    anonymous_list = urllib.request.urlopen(f"{ENDPOINT}/{bucket}")
    expect_eq("anonymous lists a public-read bucket", anonymous_list.status, 200)
    expect_error("anonymous read of a private object", "AccessDenied", 403, anonymous_get, bucket, "foo")

    # The owner's policy as GetBucketAcl gave it, plus the second user's READ (s3-tests'
    # add_bucket_user_grant).
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy = {"Owner": policy["Owner"], "Grants": [g for g in policy["Grants"] if g["Grantee"]["Type"] == "CanonicalUser"]}
    policy["Grants"].append({"Grantee": {"ID": alt_ak, "Type": "CanonicalUser"}, "Permission": "READ"})
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    expect_eq("user grant", grants(s3.get_bucket_acl(Bucket=bucket)),
              [("CanonicalUser", ak, "FULL_CONTROL"), ("CanonicalUser", alt_ak, "READ")])
    expect_eq("second user lists", [o["Key"] for o in alt.list_objects(Bucket=bucket)["Contents"]], ["foo"])
    expect_error("second user writes with READ", "AccessDenied", 403, alt.put_object, Bucket=bucket, Key="x", Body=b"")
    expect_error("second user reads the ACL with READ", "AccessDenied", 403, alt.get_bucket_acl, Bucket=bucket)
    expect_error("second user reads a private object", "AccessDenied", 403, alt.get_object, Bucket=bucket, Key="foo")

    # Object grant headers (s3-tests' test_object_header_acl_grants): the ACL is what they name.
    alt_id = f'id="{alt_ak}"'
    s3.put_object(Bucket=bucket, Key="granted", Body=b"bar", GrantRead=alt_id, GrantReadACP=alt_id,
                  GrantWriteACP=alt_id, GrantFullControl=f"id={ak}")
    expect_eq("object header grants", grants(s3.get_object_acl(Bucket=bucket, Key="granted")),
              sorted([("CanonicalUser", ak, "FULL_CONTROL"), ("CanonicalUser", alt_ak, "READ"),
                      ("CanonicalUser", alt_ak, "READ_ACP"), ("CanonicalUser", alt_ak, "WRITE_ACP")]))
    expect_eq("second user reads a granted object", alt.get_object(Bucket=bucket, Key="granted")["Body"].read(), b"bar")
    alt.put_object_acl(Bucket=bucket, Key="granted", ACL="public-read")
    expect_eq("public-read object, anonymously", anonymous_get(bucket, "granted"), b"bar")
    expect_eq("the owner stays", s3.get_object_acl(Bucket=bucket, Key="granted")["Owner"]["ID"], ak)

    # WRITE lets the second user write; its object is its own until it grants the bucket owner.
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=alt_id, GrantFullControl=f'id="{ak}"')
    alt.put_object(Bucket=bucket, Key="alt", Body=b"alt's")
    expect_error("owner reads the second user's object", "AccessDenied", 403, s3.get_object, Bucket=bucket, Key="alt")
    alt.put_object(Bucket=bucket, Key="alt", Body=b"alt's", ACL="bucket-owner-full-control")
    expect_eq("bucket-owner-full-control", s3.get_object(Bucket=bucket, Key="alt")["Body"].read(), b"alt's")

    expect_error("unknown canonical ID", "InvalidArgument", 400, s3.put_bucket_acl, Bucket=bucket,
                 GrantRead='id="no-such-user-here"')
    expect_error("grant by e-mail", "UnresolvableGrantByEmailAddress", 400, s3.put_bucket_acl, Bucket=bucket,
                 GrantRead='emailAddress="nobody@example.com"')
    for key in ("foo", "granted", "alt"):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def anonymous_get(bucket, key):
    """An unsigned GET; a refusal raises a ClientError-like error with S3's code."""
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/{bucket}/{key}") as r:
            return r.read()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        code = body.split("<Code>")[1].split("</Code>")[0] if "<Code>" in body else ""
        raise ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": e.code}}, "GetObject")


def t_bucket_policy():
    """A policy as s3-tests and `mc anonymous set download` write it: anonymous reads of one
    prefix, the second user's listing by condition, and a Deny that binds the owner."""
    if "S3_SECOND_USER_ERROR" in os.environ:
        raise AssertionError(os.environ["S3_SECOND_USER_ERROR"])
    import json
    alt_ak = os.environ["S3_SECOND_ACCESS_KEY"]
    alt = client(alt_ak, os.environ["S3_SECOND_SECRET_KEY"])
    bucket = "boto3-policy"
    s3.create_bucket(Bucket=bucket)
    for key in ("public/a", "private/b", "locked/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/public/*"},
        {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{alt_ak}:root"]}, "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringEquals": {"s3:prefix": "public/"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/locked/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    expect_eq("policy read back", json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]), policy)
    expect_eq("anonymous read allowed", anonymous_get(bucket, "public/a"), b"public/a")
    expect_error("anonymous read elsewhere", "AccessDenied", 403, anonymous_get, bucket, "private/b")
    expect_eq("second user lists the allowed prefix",
              [o["Key"] for o in alt.list_objects_v2(Bucket=bucket, Prefix="public/")["Contents"]], ["public/a"])
    expect_error("second user lists everything", "AccessDenied", 403, alt.list_objects_v2, Bucket=bucket)
    expect_error("a Deny binds the owner", "AccessDenied", 403, s3.get_object, Bucket=bucket, Key="locked/c")
    expect_error("malformed policy", "MalformedPolicy", 400, s3.put_bucket_policy, Bucket=bucket, Policy="{")
    s3.delete_bucket_policy(Bucket=bucket)
    expect_error("no policy", "NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)
    expect_eq("the owner reads again", s3.get_object(Bucket=bucket, Key="locked/c")["Body"].read(), b"locked/c")
    for key in ("public/a", "private/b", "locked/c"):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def t_lifecycle():
    """As Ceph's s3-tests set and read lifecycle rules (test_lifecycle_get, _get_no_id,
    _same_id, _invalid_status): the rules come back as they were put."""
    bucket = "boto3-lifecycle"
    s3.create_bucket(Bucket=bucket)
    rules = [{"ID": "test1/", "Expiration": {"Days": 31}, "Prefix": "test1/", "Status": "Enabled"},
             {"ID": "test2/", "Expiration": {"Days": 120}, "Prefix": "test2/", "Status": "Disabled"}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    expect_eq("rules read back", s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"], rules)
    no_id = [{"Expiration": {"Days": 31}, "Filter": {"Prefix": "test1/"}, "Status": "Enabled"}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": no_id})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    expect_eq("a rule without an ID gets one", bool(got[0].get("ID")), True)
    same_id = [dict(rules[0]), dict(rules[1], ID="test1/")]
    expect_error("the same ID twice", "InvalidArgument", 400, s3.put_bucket_lifecycle_configuration,
                 Bucket=bucket, LifecycleConfiguration={"Rules": same_id})
    expect_error("status 'enabled'", "MalformedXML", 400, s3.put_bucket_lifecycle_configuration,
                 Bucket=bucket, LifecycleConfiguration={"Rules": [dict(rules[0], Status="enabled")]})
    s3.delete_bucket_lifecycle(Bucket=bucket)
    expect_error("no rules", "NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def t_bad_credentials():
    wrong_secret = client(os.environ["AWS_ACCESS_KEY_ID"], "not-the-secret-key")
    expect_error("wrong secret key", "SignatureDoesNotMatch", 403, wrong_secret.list_buckets)
    unknown = client("AKNOSUCHUSER", "whatever-secret")
    expect_error("unknown access key", "InvalidAccessKeyId", 403, unknown.list_buckets)


def t_tagging():
    # As Ceph's s3-tests send it: a key without a value; answered in key order.
    s3.put_object(Bucket=BUCKET, Key="tagged", Body=b"tagged body", Tagging="foo=bar&bar")
    expect_eq("tags from x-amz-tagging", s3.get_object_tagging(Bucket=BUCKET, Key="tagged")["TagSet"],
              [{"Key": "bar", "Value": ""}, {"Key": "foo", "Value": "bar"}])
    etag = s3.head_object(Bucket=BUCKET, Key="tagged")["ETag"]
    tags = [{"Key": f"k{i}", "Value": "v" * 256} for i in range(10)]
    s3.put_object_tagging(Bucket=BUCKET, Key="tagged", Tagging={"TagSet": tags})
    got = s3.get_object(Bucket=BUCKET, Key="tagged")
    expect_eq("TagCount", got.get("TagCount"), 10)
    expect_eq("ETag after a tag change", got["ETag"], etag)
    expect_eq("body after a tag change", got["Body"].read(), b"tagged body")
    expect_error("11 tags", "InvalidTag", 400, s3.put_object_tagging, Bucket=BUCKET, Key="tagged",
                 Tagging={"TagSet": tags + [{"Key": "k10", "Value": ""}]})
    s3.delete_object_tagging(Bucket=BUCKET, Key="tagged")
    expect_eq("tags after delete", s3.get_object_tagging(Bucket=BUCKET, Key="tagged")["TagSet"], [])
    expect_error("bucket without tags", "NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=BUCKET)
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    expect_eq("bucket tags", s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"], [{"Key": "team", "Value": "storage"}])
    s3.delete_bucket_tagging(Bucket=BUCKET)
    s3.delete_object(Bucket=BUCKET, Key="tagged")


def t_presigned_post():
    import hmac
    import json
    import urllib3
    http = urllib3.PoolManager()
    # generate_presigned_post (SigV4), sent as a browser sends the form.
    post = s3.generate_presigned_post(
        BUCKET, "forms/${filename}", Fields={"Content-Type": "text/plain"},
        Conditions=[["starts-with", "$key", "forms/"], {"Content-Type": "text/plain"}, ["content-length-range", 1, 1 << 20]],
        ExpiresIn=300)
    body = b"from a form\r\n--" + b"x" * 1000
    fields = dict(post["fields"])
    fields["file"] = ("note.txt", body, "text/plain")
    r = http.request("POST", post["url"], fields=fields)
    expect_eq("presigned POST status", r.status, 204)
    got = s3.get_object(Bucket=BUCKET, Key="forms/note.txt")
    expect_eq("posted body", got["Body"].read(), body)
    expect_eq("posted Content-Type", got["ContentType"], "text/plain")
    expect_eq("posted ETag", got["ETag"], md5_etag(body))
    fields["file"] = ("big.txt", b"x" * ((1 << 20) + 1), "text/plain")
    r = http.request("POST", post["url"], fields=fields)
    expect_eq("POST above content-length-range", (r.status, b"<Code>EntityTooLarge</Code>" in r.data), (400, True))
    # A SigV2 policy form, as Ceph's s3-tests send it.
    policy = base64.b64encode(json.dumps({"expiration": "2100-01-01T00:00:00Z", "conditions": [
        {"bucket": BUCKET}, ["starts-with", "$key", "v2"], {"acl": "private"},
        ["starts-with", "$Content-Type", "text/plain"], ["content-length-range", 0, 1024]]}).encode())
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    signature = base64.b64encode(hmac.new(secret, policy, hashlib.sha1).digest()).decode()
    v2 = {"key": "v2.txt", "AWSAccessKeyId": os.environ["AWS_ACCESS_KEY_ID"], "acl": "private", "signature": signature,
          "policy": policy.decode(), "Content-Type": "text/plain", "file": ("file", b"bar")}
    r = http.request("POST", f"{ENDPOINT}/{BUCKET}", fields=v2)
    expect_eq("SigV2 POST status", r.status, 204)
    expect_eq("SigV2 posted body", s3.get_object(Bucket=BUCKET, Key="v2.txt")["Body"].read(), b"bar")
    v2["signature"] = base64.b64encode(b"0" * 20).decode()
    r = http.request("POST", f"{ENDPOINT}/{BUCKET}", fields=v2)
    expect_eq("wrong signature", (r.status, b"<Code>SignatureDoesNotMatch</Code>" in r.data), (403, True))
    for key in ["forms/note.txt", "v2.txt"]:
        s3.delete_object(Bucket=BUCKET, Key=key)


def t_cors():
    import urllib3
    http = urllib3.PoolManager()
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"],
         "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 300}]})
    rules = s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"]
    expect_eq("stored rule origins", rules[0]["AllowedOrigins"], ["https://*.example.com"])
    r = http.request("OPTIONS", f"{ENDPOINT}/{BUCKET}/any-key", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,x-amz-date"})
    expect_eq("preflight", (r.status, r.headers.get("Access-Control-Allow-Origin"), r.headers.get("Access-Control-Allow-Headers")),
              (200, "https://app.example.com", "content-type, x-amz-date"))
    r = http.request("OPTIONS", f"{ENDPOINT}/{BUCKET}/any-key", headers={
        "Origin": "https://evil.example.org", "Access-Control-Request-Method": "GET"})
    expect_eq("preflight from an origin no rule allows", r.status, 403)
    s3.delete_bucket_cors(Bucket=BUCKET)
    expect_error("no CORS rules", "NoSuchCORSConfiguration", 404, s3.get_bucket_cors, Bucket=BUCKET)


def t_cleanup():
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in p.get("Contents", [])]
    if keys:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
    s3.delete_bucket(Bucket=BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert BUCKET not in names, f"{BUCKET} still listed"
    expect_error("get in the deleted bucket", "NoSuchBucket", 404, s3.get_object, Bucket=BUCKET, Key="big.bin")


CHECKS = [
    ("create_bucket, list_buckets, head_bucket", t_create_bucket),
    ("put/get/head/delete object", t_put_get_head_delete),
    ("upload_file/download_file 30 MiB (multipart, 4 threads)", t_transfer_30mib),
    ("upload_file 20 MiB with boto3's default CRC32: the object's checksum", t_multipart_crc32),
    ("default CRC32 checksum accepted", t_default_crc32),
    ("CRC32 returned with ChecksumMode=ENABLED", t_crc32_returned),
    ("wrong CRC32 refused (BadDigest)", t_wrong_crc32_refused),
    ("ChecksumAlgorithm=SHA256 put, get with ChecksumMode", t_sha256),
    ("copy_object (COPY and REPLACE metadata)", t_copy_object),
    ("SSE-C: put/get/head, range, wrong key 403, no key 400, upload_file/download_file, copy to SSE-S3", t_sse_c),
    ("SSE-S3: put/get/head headers; put/get/delete_bucket_encryption, default applied", t_sse_s3),
    ("list_objects_v2 paginator, 1500 keys, exact order", t_list_paginator),
    ("list_objects_v2 Delimiter, StartAfter", t_list_delimiter),
    ("delete_objects 1500 keys in 2 batches, Quiet", t_delete_objects),
    ("generate_presigned_url GET/PUT + urllib", t_presigned),
    ("SigV2 (signature_version='s3'): bucket, put with metadata and Content-MD5, get, list, "
     "presigned GET, wrong secret, delete", t_sigv2),
    ("error codes (NoSuchKey, NoSuchBucket, BucketNotEmpty, ...)", t_error_codes),
    ("conditional writes: IfNoneMatch='*' races, IfMatch", t_conditional_writes),
    ("list_object_versions of an unversioned bucket", t_list_object_versions),
    ("versioning: versions by id, markers, null version, suspended, batch deletes", t_versioning),
    ("object lock: configuration, retention, legal hold, locked deletes", t_object_lock),
    ("object and bucket tagging", t_tagging),
    ("presigned POST (SigV4) and a SigV2 policy form via urllib3", t_presigned_post),
    ("bucket CORS rules and preflights", t_cors),
    ("second user (corestore admin user add)", t_second_user),
    ("ACLs: canned, AccessControlPolicy, grant headers, second user and anonymous", t_acls),
    ("lifecycle rules set, read back and refused", t_lifecycle),
    ("bucket policy: anonymous prefix, second user by condition, Deny", t_bucket_policy),
    ("wrong secret, unknown access key refused", t_bad_credentials),
    ("empty and delete the bucket", t_cleanup),
]


def main():
    passed = failed = 0
    for name, fn in CHECKS:
        try:
            fn()
            passed += 1
            print(f"  ok   boto3: {name}", flush=True)
        except Exception as e:  # every failure, whatever its kind, is a failed check
            failed += 1
            print(f"  FAIL boto3: {name}: {type(e).__name__}: {e}", flush=True)
            tb = traceback.format_exc().strip().splitlines()
            for line in tb[-8:]:
                print(f"       | {line}")
    print(f"s3-clients: boto3 {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
