"""`--bucket NAME=DIR` parsing, shared by serve and agent (contract/buckets.py)."""

from __future__ import annotations

import os

import pytest

from contract.buckets import bucket_dir, bucket_name, parse_buckets, split_env


def test_parse_and_resolve() -> None:
    buckets = parse_buckets(["reports=/srv/reports", "my.bucket-1=rel/dir"])
    assert buckets == {"reports": "/srv/reports", "my.bucket-1": os.path.abspath("rel/dir")}
    assert bucket_name("arn:aws:s3:::reports") == "reports"
    assert bucket_name("arn:aws:s3:::reports/key") is None
    assert bucket_dir(buckets, "arn:aws:s3:::reports") == "/srv/reports"
    assert bucket_dir(buckets, "arn:aws:s3:::other") is None
    assert split_env("a=/x, b=/y  c=/z") == ["a=/x", "b=/y", "c=/z"]
    assert split_env(None) == []


@pytest.mark.parametrize("spec", ["reports", "=/x", "Bad_Name=/x", "ab=/x", "reports="])
def test_malformed_specs_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="--bucket"):
        parse_buckets([spec])


def test_a_name_mapped_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_buckets(["reports=/a", "reports=/b"])
    assert parse_buckets(["reports=/a", "reports=/a"]) == {"reports": "/a"}
