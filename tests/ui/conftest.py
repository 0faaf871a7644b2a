"""The status page's tests use the API suites' server: the same fixtures, not a copy of them."""

from tests.api.conftest import root, server

__all__ = ["root", "server"]
