"""Local buckets: `arn:aws:s3:::NAME` mapped to a directory, for task reports and manifests.

DataSync reads manifests from and writes task reports to Amazon S3. This server has no S3, so
an operator maps bucket names to directories: ``serve --bucket NAME=DIR`` (the control plane's
catalogue, and the embedded agent's directories) and ``agent --bucket NAME=DIR`` (a remote
agent's own directories for the same names). Both sides parse the flags here, once.

The control plane refuses a task naming a bucket it does not know (InvalidRequestException
naming the bucket); an agent that does not map a bucket its job names fails the manifest (the
execution) or the report (ReportResult ERROR) with a message naming the bucket. Object keys are
resolved below the directory without following symlinks (engine/manifest.py, engine/report.py),
so nothing is read or written outside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["BUCKET_ARN_RE", "bucket_name", "parse_bucket", "parse_buckets", "split_env"]

# S3 bucket names: 3-63 characters of lower-case letters, digits, dots and hyphens
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BUCKET_ARN_RE = re.compile(r"^arn:aws[a-z-]*:s3:::([^/]+)$")


def parse_bucket(spec: str) -> tuple[str, str]:
    """``NAME=DIR`` → (NAME, absolute DIR); ValueError with the reason if malformed."""
    name, sep, directory = spec.partition("=")
    name = name.strip()
    if not sep or not directory:
        raise ValueError(f"--bucket {spec!r}: expected NAME=DIR")
    if not _NAME_RE.match(name):
        raise ValueError(f"--bucket {spec!r}: {name!r} is not an S3 bucket name")
    return name, os.path.abspath(directory)


def parse_buckets(specs: Iterable[str]) -> dict[str, str]:
    """Every ``NAME=DIR``; a name given twice with two directories is an error."""
    out: dict[str, str] = {}
    for spec in specs:
        name, directory = parse_bucket(spec)
        if out.get(name, directory) != directory:
            raise ValueError(f"--bucket {name} is mapped twice ({out[name]}, {directory})")
        out[name] = directory
    return out


def split_env(value: str | None) -> list[str]:
    """The environment form: specs separated by commas or whitespace (a directory holding a
    comma or a space needs the flag instead)."""
    return [s for s in re.split(r"[,\s]+", value or "") if s]


def bucket_name(arn: str) -> str | None:
    """The bucket of an `S3BucketArn` (None if it is not a bucket ARN)."""
    match = BUCKET_ARN_RE.match(arn)
    return match.group(1) if match else None


def bucket_dir(buckets: Mapping[str, str], arn: str) -> str | None:
    """The directory mapped for the bucket `arn` names, or None."""
    name = bucket_name(arn)
    return None if name is None else buckets.get(name)


__all__ += ["bucket_dir"]
