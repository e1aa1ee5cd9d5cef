"""Storage in S3 (STORAGE=s3): results, uploads, job status and styles; see base.Storage.

The same keys as the local storage (`jobs/<id>/...`, `uploads/...`), in one
private bucket. Downloads go to the browser as short-lived presigned URLs,
so file bytes never pass through the web server.
"""

from __future__ import annotations

from perfrnn.errors import PerfRNNError

PRESIGNED_SECONDS = 300


def aws_client(service: str, config: dict):
    """A boto3 client for `service` with the region and endpoint of the settings."""
    import boto3

    return boto3.client(service, region_name=config.get("AWS_REGION") or None,
                        endpoint_url=config.get("AWS_ENDPOINT_URL") or None)


def _missing(error) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")


class S3Storage:
    """Keys in one bucket; `download_url` presigns a GET for the browser."""

    kind = "s3"

    def __init__(self, bucket: str, client):
        if not bucket:
            raise ValueError("STORAGE=s3 needs S3_BUCKET (the bucket `python -m infra up` made)")
        self.bucket = bucket
        self.client = client

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if _missing(error):
                raise PerfRNNError(f"{key} is no longer stored") from None
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as error:
            if _missing(error):
                return False
            raise

    def keys(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with its ETag."""
        found = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                found[entry["Key"]] = entry["ETag"].strip('"')
        return found

    def delete_prefix(self, prefix: str) -> None:
        keys = list(self.keys(prefix.rstrip("/") + "/"))
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})

    def download_url(self, key: str, filename: str) -> str:
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=PRESIGNED_SECONDS,
            Params={"Bucket": self.bucket, "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'})

    def local_path(self, key: str) -> None:
        return None
