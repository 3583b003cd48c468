"""boto3 against the appliance: the S3 API as an SDK user calls it.

Run by kernel/tests/s3_clients.rs with the clients' virtualenv:

    python boto3_suite.py ENDPOINT CA_BUNDLE ACCESS_KEY SECRET WORKDIR

Prints one line per check, `RESULT<TAB>operation<TAB>ok|FAIL<TAB>detail`,
and goes on after a failure (each check cleans up after itself as far as
it can); the exit code is 0 even when checks fail, the Rust side counts.
"""

import hashlib
import io
import os
import ssl
import sys
import traceback
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, CA, KEY, SECRET, WORKDIR = sys.argv[1:6]
BUCKET = "boto3-suite"
MIB = 1024 * 1024


def report(op, ok, detail=""):
    detail = " ".join(str(detail).split())[:300]
    print(f"RESULT\t{op}\t{'ok' if ok else 'FAIL'}\t{detail}", flush=True)


def check(op):
    """Runs the decorated function now; an exception or a False/str result is a failure."""

    def run(fn):
        try:
            outcome = fn()
        except Exception as error:  # noqa: BLE001 - every failure is reported
            detail = f"{type(error).__name__}: {error}"
            if os.environ.get("S3_CLIENTS_TRACE"):
                traceback.print_exc()
            report(op, False, detail)
            return fn
        if outcome is True or outcome is None:
            report(op, True)
        elif isinstance(outcome, tuple):
            report(op, outcome[0], outcome[1])
        else:
            report(op, False, outcome)
        return fn

    return run


def client(key=KEY, secret=SECRET, **config):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        verify=CA,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=30, read_timeout=120, **config),
    )


def error_code(fn):
    """The S3 error code (or HTTP status for bodiless errors) that `fn` raises."""
    try:
        fn()
    except ClientError as error:
        return error.response.get("Error", {}).get("Code"), error.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def pattern(size, seed):
    block = hashlib.sha256(seed.encode()).digest() * 4096  # 128 KiB
    return (block * (size // len(block) + 1))[:size]


s3 = client()
SMALL = pattern(1024, "small")
BIG = pattern(20 * MIB, "big")


@check("create_bucket + head_bucket")
def _():
    s3.create_bucket(Bucket=BUCKET)
    s3.head_bucket(Bucket=BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return (BUCKET in names, f"buckets {names}")


@check("put_object/get_object 0 B and 1 KiB")
def _():
    s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="small", Body=SMALL, ContentType="application/x-test")
    empty = s3.get_object(Bucket=BUCKET, Key="empty")["Body"].read()
    got = s3.get_object(Bucket=BUCKET, Key="small")
    body = got["Body"].read()
    if empty != b"" or body != SMALL:
        return f"bodies differ: empty {len(empty)} B, small {len(body)} B"
    return (got["ContentType"] == "application/x-test", f"content type {got['ContentType']!r}")


@check("head_object")
def _():
    head = s3.head_object(Bucket=BUCKET, Key="small")
    md5 = hashlib.md5(SMALL).hexdigest()
    ok = head["ContentLength"] == 1024 and head["ETag"].strip('"') == md5
    return (ok, f"length {head['ContentLength']} etag {head['ETag']} (md5 {md5})")


@check("upload_fileobj 20 MiB (multipart) + download_fileobj")
def _():
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=2)
    s3.upload_fileobj(io.BytesIO(BIG), BUCKET, "big", Config=config)
    etag = s3.head_object(Bucket=BUCKET, Key="big")["ETag"]
    out = io.BytesIO()
    s3.download_fileobj(BUCKET, "big", out, Config=config)
    if out.getvalue() != BIG:
        return f"downloaded {len(out.getvalue())} B, differs from the upload"
    return (etag.strip('"').endswith("-3"), f"etag {etag} (3 parts expected)")


@check("get_object Range (multipart object)")
def _():
    got = s3.get_object(Bucket=BUCKET, Key="big", Range="bytes=1000-1999")
    body = got["Body"].read()
    status = got["ResponseMetadata"]["HTTPStatusCode"]
    ok = status == 206 and body == BIG[1000:2000] and got["ContentRange"] == f"bytes 1000-1999/{len(BIG)}"
    return (ok, f"status {status} range {got.get('ContentRange')} {len(body)} B")


@check("get_object Range on a single-part object (default checksum validation)")
def _():
    got = s3.get_object(Bucket=BUCKET, Key="small", Range="bytes=-10")
    body = got["Body"].read()
    return (body == SMALL[-10:], f"{len(body)} B, checksum headers {[h for h in got['ResponseMetadata']['HTTPHeaders'] if 'checksum' in h]}")


@check("get_object Range on a single-part object (checksum validation when_required)")
def _():
    relaxed = client(response_checksum_validation="when_required")
    got = relaxed.get_object(Bucket=BUCKET, Key="small", Range="bytes=-10")
    body = got["Body"].read()
    return (body == SMALL[-10:] and got["ContentRange"] == "bytes 1014-1023/1024", f"{len(body)} B {got['ContentRange']}")


@check("conditional get (IfNoneMatch -> 304, IfMatch wrong -> 412)")
def _():
    etag = s3.head_object(Bucket=BUCKET, Key="small")["ETag"]
    not_modified = error_code(lambda: s3.get_object(Bucket=BUCKET, Key="small", IfNoneMatch=etag))
    failed = error_code(lambda: s3.get_object(Bucket=BUCKET, Key="small", IfMatch='"0123"'))
    matched = s3.get_object(Bucket=BUCKET, Key="small", IfMatch=etag)["Body"].read() == SMALL
    ok = not_modified[1] == 304 and failed == ("PreconditionFailed", 412) and matched
    return (ok, f"IfNoneMatch {not_modified}, IfMatch wrong {failed}, IfMatch right {matched}")


@check("copy_object")
def _():
    s3.copy_object(Bucket=BUCKET, Key="copy-of-small", CopySource={"Bucket": BUCKET, "Key": "small"})
    body = s3.get_object(Bucket=BUCKET, Key="copy-of-small")["Body"].read()
    return (body == SMALL, f"{len(body)} B")


@check("list_objects_v2 paginated with prefix and delimiter")
def _():
    keys = [f"tree/a/{i:02}" for i in range(7)] + ["tree/b/x", "tree/c/y", "tree/top"]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    seen, pages = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="tree/a/", PaginationConfig={"PageSize": 3}):
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
    flat_ok = seen == sorted(keys[:7]) and pages == 3
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="tree/", Delimiter="/")
    prefixes = [p["Prefix"] for p in listing.get("CommonPrefixes", [])]
    contents = [o["Key"] for o in listing.get("Contents", [])]
    tree_ok = prefixes == ["tree/a/", "tree/b/", "tree/c/"] and contents == ["tree/top"]
    # Delimiter with pages of one: common prefixes also count towards MaxKeys.
    rolled, pages_d = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="tree/", Delimiter="/", PaginationConfig={"PageSize": 1}
    ):
        pages_d += 1
        rolled += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
    rolled_ok = sorted(rolled) == ["tree/a/", "tree/b/", "tree/c/", "tree/top"] and len(rolled) == 4
    detail = f"{pages} pages {seen}; delimiter: {prefixes} {contents}; delimiter pages of 1: {pages_d} pages {rolled}"
    return (flat_ok and tree_ok and rolled_ok, detail)


@check("list_objects (v1) with marker")
def _():
    first = s3.list_objects(Bucket=BUCKET, Prefix="tree/a/", MaxKeys=4)
    keys = [o["Key"] for o in first["Contents"]]
    second = s3.list_objects(Bucket=BUCKET, Prefix="tree/a/", Marker=keys[-1])
    keys += [o["Key"] for o in second["Contents"]]
    ok = first["IsTruncated"] and not second["IsTruncated"] and keys == [f"tree/a/{i:02}" for i in range(7)]
    return (ok, f"{keys}")


def fetch(url, data=None, method="GET"):
    """(status, body) of a plain HTTPS request."""
    context = ssl.create_default_context(cafile=CA)
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


SIGV4 = client(signature_version="s3v4")


@check("presigned GET URL (SigV4) via urllib")
def _():
    url = SIGV4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "small"}, ExpiresIn=300)
    status, body = fetch(url)
    return (status == 200 and body == SMALL, f"status {status}, {len(body)} B")


@check("presigned PUT URL (SigV4) via urllib")
def _():
    url = SIGV4.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned-put"}, ExpiresIn=300)
    status, _ = fetch(url, data=b"via presigned put", method="PUT")
    body = s3.get_object(Bucket=BUCKET, Key="presigned-put")["Body"].read()
    return (status == 200 and body == b"via presigned put", f"status {status}, body {body[:40]!r}")


@check("presigned GET URL, botocore default (SigV2 query auth) -> 403 AccessDenied")
def _():
    # botocore presigns S3 with SigV2 unless told s3v4; the appliance
    # implements SigV4 only (security/README.md, known gaps).
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "small"}, ExpiresIn=300)
    status, body = fetch(url)
    sigv2 = "AWSAccessKeyId=" in url
    return (status == 403 and b"<Code>AccessDenied</Code>" in body, f"SigV2 URL {sigv2}, status {status}")


@check("delete_objects")
def _():
    doomed = [f"tree/a/{i:02}" for i in range(7)] + ["no-such-key"]
    result = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in doomed]})
    deleted = sorted(d["Key"] for d in result.get("Deleted", []))
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="tree/a/").get("Contents", [])]
    ok = deleted == sorted(doomed) and not result.get("Errors") and left == []
    return (ok, f"deleted {len(deleted)}, errors {result.get('Errors')}, left {left}")


@check("errors: NoSuchKey, NoSuchBucket, BucketAlreadyOwnedByYou")
def _():
    missing_key = error_code(lambda: s3.get_object(Bucket=BUCKET, Key="nope"))
    missing_bucket = error_code(lambda: s3.list_objects_v2(Bucket="no-such-bucket-here"))
    again = error_code(lambda: s3.create_bucket(Bucket=BUCKET))
    ok = missing_key == ("NoSuchKey", 404) and missing_bucket == ("NoSuchBucket", 404)
    ok = ok and again[0] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    return (ok, f"{missing_key} {missing_bucket} {again}")


@check("versioning: put_bucket_versioning, list_object_versions, get by VersionId")
def _():
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    status = s3.get_bucket_versioning(Bucket=BUCKET).get("Status")
    v1 = s3.put_object(Bucket=BUCKET, Key="versioned", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=BUCKET, Key="versioned", Body=b"two")["VersionId"]
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="versioned")["Versions"]
    ids = [v["VersionId"] for v in versions]
    old = s3.get_object(Bucket=BUCKET, Key="versioned", VersionId=v1)["Body"].read()
    new = s3.get_object(Bucket=BUCKET, Key="versioned")["Body"].read()
    marker = s3.delete_object(Bucket=BUCKET, Key="versioned")
    gone = error_code(lambda: s3.get_object(Bucket=BUCKET, Key="versioned"))
    still = s3.get_object(Bucket=BUCKET, Key="versioned", VersionId=v2)["Body"].read()
    ok = status == "Enabled" and v1 != v2 and sorted(ids) == sorted([v1, v2]) and old == b"one" and new == b"two"
    ok = ok and marker.get("DeleteMarker") is True and gone[1] == 404 and still == b"two"
    return (ok, f"status {status} ids {ids} old {old!r} new {new!r} marker {marker.get('DeleteMarker')} after delete {gone}")


@check("auth: wrong secret -> SignatureDoesNotMatch")
def _():
    code = error_code(lambda: client(secret=SECRET[::-1]).list_buckets())
    return (code == ("SignatureDoesNotMatch", 403), f"{code}")


@check("auth: unknown key -> InvalidAccessKeyId")
def _():
    code = error_code(lambda: client(key="RCUNKNOWNUNKNOWNUNKN").list_buckets())
    return (code == ("InvalidAccessKeyId", 403), f"{code}")


@check("auth: unsigned -> AccessDenied")
def _():
    anonymous = client(signature_version=botocore.UNSIGNED)
    code = error_code(lambda: anonymous.get_object(Bucket=BUCKET, Key="small"))
    listing = error_code(lambda: anonymous.list_objects_v2(Bucket=BUCKET))
    return (code == ("AccessDenied", 403) and listing == ("AccessDenied", 403), f"get {code}, list {listing}")


@check("delete all versions + delete_bucket")
def _():
    listing = s3.list_object_versions(Bucket=BUCKET)
    doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]
    while doomed:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": doomed[:1000]})
        doomed = doomed[1000:]
    s3.delete_bucket(Bucket=BUCKET)
    code = error_code(lambda: s3.head_bucket(Bucket=BUCKET))
    return (code[1] == 404, f"head after delete {code}")
