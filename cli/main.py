"""`datasync-local` entry point: one subcommand per module, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

# subcommand -> module with `add_arguments(parser)` and `run(args) -> int`
_SUBCOMMANDS = {
    "sync": ("cli.sync", "Sync the contents of SRC into DST with the engine alone."),
    "serve": ("cli.serve", "Run the DataSync API server with its store and embedded agent."),
    "agent": ("cli.agent", "Run an on-prem agent that pulls work from a control plane."),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def version_text() -> str:
    """`datasync-local X.Y.Z`, from the installed distribution's metadata (one source: pyproject)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"datasync-local {version('datasync-local')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "datasync-local (not installed)"


class _Version(argparse.Action):
    """argparse's "version" action, but the version is looked up only when asked for: reading
    the distribution's metadata (importlib.metadata, email, zipfile) cost ~20 ms of every start,
    a sixth of a no-op sync."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, *args: object, **kwargs: object
    ) -> NoReturn:
        sys.stdout.write(version_text() + "\n")  # where argparse's own action prints it
        parser.exit()


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_Version, help="show the version and exit")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, import just that subcommand (a sync must not pay for the API)."""
    parser = argparse.ArgumentParser(
        prog="datasync-local",
        description="A self-hosted file-transfer engine that speaks the AWS DataSync API.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        if only is not None and name != only:
            _add_version(sub.add_parser(name, help=help_text))
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # subcommand not built yet
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        _add_version(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:  # a Ctrl-C while still importing is an interruption too, not a traceback
        parser = build_parser(chosen if chosen in _SUBCOMMANDS else None)
        args = parser.parse_args(argv)
        code: int = args._run(args)
    except KeyboardInterrupt:
        print("datasync-local: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
