"""Manifests: RFC 4180 quoting, hostile names, streaming, and lookups that never leave the root."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.manifest import (
    EntryKind,
    ManifestEntry,
    ManifestError,
    count_entries,
    open_manifest,
    read_manifest,
    resolve_entry,
)


def entries(data: bytes) -> list[ManifestEntry]:
    return list(read_manifest(io.BytesIO(data)))


def paths(data: bytes) -> list[str]:
    return [e.path for e in entries(data)]


def test_plain_lines_and_version_ids() -> None:
    got = entries(b"photos/picture1.png,111111\nphotos/picture2.png,121212\nphotos/picture3.png\n")
    assert [(e.path, e.version_id, e.line) for e in got] == [
        ("photos/picture1.png", "111111", 1),
        ("photos/picture2.png", "121212", 2),
        ("photos/picture3.png", None, 3),
    ]


def test_rfc4180_quoting_commas_quotes_newlines() -> None:
    data = (
        b'"filename,with,commas.txt"\r\n'
        b'"say ""hi"".txt",v1\r\n'
        b'"this is a\nfilename.txt"\n'
        b"after.txt\n"
    )
    got = entries(data)
    assert [e.path for e in got] == [
        "filename,with,commas.txt",
        'say "hi".txt',
        "this is a\nfilename.txt",
        "after.txt",
    ]
    assert got[1].version_id == "v1"
    assert [e.line for e in got] == [1, 2, 3, 5]  # the quoted newline spans lines 3-4


def test_utf8_names_bom_blank_lines_and_no_trailing_newline() -> None:
    data = "\ufeffdocuments/résumé1.pdf\n\n日本語/ファイル.txt\n  spaced name .txt".encode()
    assert paths(data) == ["documents/résumé1.pdf", "日本語/ファイル.txt", "  spaced name .txt"]


def test_a_quote_inside_an_unquoted_field_is_taken_literally() -> None:
    # Python's csv (strict) accepts it, as most CSV writers' readers do; the name is unambiguous
    assert paths(b'ab"c"d\n') == ['ab"c"d']


def test_paths_are_normalised() -> None:
    assert paths(b"./a//b/./c.txt\n") == ["a/b/c.txt"]
    (entry,) = entries(b"some/dir/\n")
    assert entry.path == "some/dir"
    assert entry.directory


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"/etc/passwd\n", "line 1: '/etc/passwd' is absolute"),
        (b"ok.txt\n../outside\n", "line 2: '../outside' climbs out"),
        (b"a/../../etc/passwd\n", "climbs out"),
        (b"a/b/..\n", "climbs out"),
        (b"ok\n,1234\n", "line 2: the path is empty"),
        (b"a\x00b\n", "NUL"),
        (b"a,b,c\n", "3 columns"),
        (b"./\n", "names the source location itself"),
        (b'"unterminated\n', "not valid CSV"),
        (b"ok.txt\n\xff\xfe.txt\n", "not UTF-8"),
        (("x" * 256).encode() + b"\n", "component is longer than 255 bytes"),
        (("abc/" * 1100).encode() + b"f\n", "longer than 4096 bytes"),
    ],
)
def test_hostile_manifests_are_refused_naming_the_line(data: bytes, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        entries(data)
    assert words in str(info.value), str(info.value)


def test_entries_before_a_bad_line_come_first_and_count_refuses_up_front() -> None:
    stream = read_manifest(io.BytesIO(b"a.txt\nb.txt\n/abs\n"), name="s3://bucket/m.csv")
    assert next(stream).path == "a.txt"
    assert next(stream).path == "b.txt"
    with pytest.raises(ManifestError, match=r"s3://bucket/m\.csv line 3"):
        next(stream)
    with pytest.raises(ManifestError):
        count_entries(io.BytesIO(b"a.txt\nb.txt\n/abs\n"))
    assert count_entries(io.BytesIO(b"a.txt\n\nb.txt\n")) == 2


def test_the_callers_stream_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"a\nb\n")
    with path.open("rb") as fh:
        assert count_entries(fh) == 2
        assert not fh.closed


def test_reading_is_streamed_not_listed() -> None:
    """50,000 lines read through a generator: peak memory stays far below the manifest size."""

    class Lines(io.RawIOBase):
        def __init__(self, count: int) -> None:
            self.rows: Iterator[bytes] = (
                f"dir{i % 100}/file-{i:07d}.bin\n".encode() for i in range(count)
            )
            self.pending = b""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            while len(self.pending) < len(buffer):
                row = next(self.rows, None)
                if row is None:
                    break
                self.pending += row
            n = min(len(buffer), len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n

    count = 50_000  # about 1.3 MB of manifest text, never all at once
    tracemalloc.start()
    try:
        seen = 0
        for entry in read_manifest(io.BufferedReader(Lines(count))):
            seen += 1
            last = entry
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert last.path == f"dir{(count - 1) % 100}/file-{count - 1:07d}.bin"
    assert peak < 300_000


@pytest.fixture
def source(tmp_path: Path) -> Iterator[int]:
    root = tmp_path / "src"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "f.txt").write_text("x")
    (root / "top.txt").write_text("y")
    (root / 'a,b "c"\nd.txt').write_text("z")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    (root / "escape").symlink_to(outside)
    (root / "link.txt").symlink_to("top.txt")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def kind(fd: int, path: str, directory: bool = False) -> EntryKind:
    return resolve_entry(fd, ManifestEntry(path=path, line=1, directory=directory)).kind


def test_resolve_entry_kinds(source: int) -> None:
    assert kind(source, "top.txt") is EntryKind.FILE
    assert kind(source, "dir/sub/f.txt") is EntryKind.FILE
    assert kind(source, 'a,b "c"\nd.txt') is EntryKind.FILE
    assert kind(source, "missing.txt") is EntryKind.MISSING
    assert kind(source, "nodir/f.txt") is EntryKind.MISSING
    assert kind(source, "top.txt/child") is EntryKind.MISSING  # a file used as a directory
    assert kind(source, "dir/sub") is EntryKind.DIRECTORY
    assert kind(source, "top.txt", directory=True) is EntryKind.DIRECTORY
    # a symlink leaf is an item of its own (copied as a link); a symlinked parent is not followed
    assert kind(source, "link.txt") is EntryKind.FILE
    assert kind(source, "escape/secret.txt") is EntryKind.SYMLINKED_PARENT


def test_resolved_entries_explain_themselves(source: int) -> None:
    missing = resolve_entry(source, ManifestEntry("gone.txt", 7))
    assert missing.reason == "gone.txt: listed in the manifest but not found at the source"
    directory = resolve_entry(source, ManifestEntry("dir", 3))
    assert "is a directory" in directory.reason and "include filter" in directory.reason
    found = resolve_entry(source, ManifestEntry("top.txt", 1))
    assert found.reason == "" and found.stat is not None and found.stat.st_size == 1


def test_open_manifest_stays_inside_the_bucket(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    (bucket / "manifests").mkdir(parents=True)
    (bucket / "manifests" / "list.csv").write_bytes(b'a.txt\n"b,c.txt",v2\n')
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"secret\n")
    (bucket / "link.csv").symlink_to(outside)
    (bucket / "linkdir").symlink_to(bucket / "manifests")

    with open_manifest(str(bucket), "manifests/list.csv") as fh:
        assert [e.path for e in read_manifest(fh)] == ["a.txt", "b,c.txt"]
    with pytest.raises(ManifestError, match="not an object key"):
        open_manifest(str(bucket), "../outside.csv")
    with pytest.raises(ManifestError, match=r"manifest 'link\.csv'"):
        open_manifest(str(bucket), "link.csv")
    with pytest.raises(ManifestError, match="cannot open 'linkdir'"):
        open_manifest(str(bucket), "linkdir/list.csv")
    with pytest.raises(ManifestError, match="No such file"):
        open_manifest(str(bucket), "manifests/missing.csv")
    with pytest.raises(ManifestError, match="not a regular file"):
        open_manifest(str(bucket), "manifests")
    with pytest.raises(ManifestError, match="bucket directory"):
        open_manifest(str(tmp_path / "nope"), "list.csv")
