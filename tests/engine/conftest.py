"""Fixtures of the engine's tests: both ways of opening beneath a root."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine import scan


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with kernel-enforced openat2 (skipped where the kernel refuses it) and with the
    per-component O_NOFOLLOW walk that replaces it there. The environment variable reaches the
    listing helper processes too."""
    if request.param == "walk":
        monkeypatch.setenv("DATASYNC_LOCAL_NO_OPENAT2", "1")
    else:
        monkeypatch.delenv("DATASYNC_LOCAL_NO_OPENAT2", raising=False)
    scan.reset_openat2()
    if request.param == "openat2" and scan.openat2() is None:
        pytest.skip("this kernel (or its seccomp filter) refuses openat2")
    yield str(request.param)
    monkeypatch.undo()
    scan.reset_openat2()
