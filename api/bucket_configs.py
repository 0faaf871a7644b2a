"""The control plane's checks of `TaskReportConfig` and `ManifestConfig` (issue 13).

The shapes themselves were validated against botocore's model by `api.validation`; what is left
is what the model cannot say: the bucket must be one this server maps (``serve --bucket``), the
members DataSync fixes must have its values, and the report's `Subdirectory` / the manifest's
key must stay inside the bucket. Every refusal is an InvalidRequestException naming the member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.errors import InvalidRequestException
from contract import Doc
from contract.buckets import bucket_name

__all__ = ["check_manifest_config", "check_report_config", "updated"]


def _bucket(arn: str, member: str, buckets: Mapping[str, str]) -> None:
    name = bucket_name(arn)
    if name is None:
        raise InvalidRequestException(f"{member} {arn!r} is not an S3 bucket ARN.", "InvalidS3")
    if name not in buckets:
        known = ", ".join(sorted(buckets)) or "none"
        raise InvalidRequestException(
            f"{member}: bucket {name!r} ({arn}) is not mapped on this server; start serve with "
            f"--bucket {name}=DIR (mapped buckets: {known}).",
            "BucketNotMapped",
        )


def _inside(key: str, member: str, *, may_be_empty: bool) -> None:
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequestException(f"{member} {key!r} climbs out of the bucket with '..'.")
    if not parts and not may_be_empty:
        raise InvalidRequestException(f"{member} {key!r} names no object.")


def check_report_config(config: Doc, buckets: Mapping[str, str]) -> Doc:
    """A TaskReportConfig this server can honour, as stored (the request's own members)."""
    s3 = (config.get("Destination") or {}).get("S3")
    if not s3:
        raise InvalidRequestException(
            "TaskReportConfig.Destination.S3 is required: the bucket the report is written to."
        )
    _bucket(s3["S3BucketArn"], "TaskReportConfig.Destination.S3.S3BucketArn", buckets)
    _inside(
        s3.get("Subdirectory", ""),
        "TaskReportConfig.Destination.S3.Subdirectory",
        may_be_empty=True,
    )
    return dict(config)


def check_manifest_config(config: Doc, buckets: Mapping[str, str]) -> Doc:
    """A ManifestConfig this server can honour: Action TRANSFER, Format CSV, a mapped bucket."""
    for member, value in (("Action", "TRANSFER"), ("Format", "CSV")):
        got = config.get(member, value)
        if got != value:
            raise InvalidRequestException(
                f"ManifestConfig.{member} must be {value}; got {got!r}.", "InvalidManifest"
            )
    s3 = (config.get("Source") or {}).get("S3")
    if not s3:
        raise InvalidRequestException("ManifestConfig.Source.S3 is required.", "InvalidManifest")
    _bucket(s3["S3BucketArn"], "ManifestConfig.Source.S3.S3BucketArn", buckets)
    _inside(
        s3["ManifestObjectPath"], "ManifestConfig.Source.S3.ManifestObjectPath", may_be_empty=False
    )
    return {"Action": "TRANSFER", "Format": "CSV", **config}


def recheck(
    report: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None, buckets: Mapping[str, str]
) -> None:
    """At StartTaskExecution: the task's stored configs must still name mapped buckets (the
    server may have been restarted with other --bucket flags)."""
    if report:
        check_report_config(dict(report), buckets)
    if manifest:
        check_manifest_config(dict(manifest), buckets)


Config = Mapping[str, Any] | None


def updated(
    report: Config, manifest: Config, p: Doc, buckets: Mapping[str, str]
) -> tuple[Config, Config]:
    """The TaskReportConfig and ManifestConfig after CreateTask/UpdateTask's members (or a
    StartTaskExecution's overrides): a config replaces the stored one; an empty object (`{}`)
    removes it, as DataSync's UpdateTask does; an absent member keeps it."""
    if "TaskReportConfig" in p:
        given = p["TaskReportConfig"]
        report = check_report_config(given, buckets) if given else None
    if "ManifestConfig" in p:
        given = p["ManifestConfig"]
        manifest = check_manifest_config(given, buckets) if given else None
    return report, manifest


__all__ += ["recheck"]
