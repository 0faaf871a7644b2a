"""The progress display of `datasync-local sync`, drawn from `Transfer.snapshot()` alone.

On a terminal one line is redrawn in place with `rich` (it knows the terminal's width and how to
redraw without scrolling); the line is cut to the width by dropping the least useful fields, so
it never wraps. Elsewhere (a pipe, a log file, CI) a plain line is printed every few seconds and at
each phase change, as rclone's `--stats` does. What is shown is what the snapshot holds (phase,
bytes written against the estimate, items, items verified) and, on a second line, the file(s) in
flight (`Transfer.in_flight()`: being copied or verified), the path cut from the left to fit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from cli.sizes import format_size

if TYPE_CHECKING:  # rich is imported where a line is drawn: ~50 ms a `sync --no-progress` skips
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.text import Text

__all__ = [
    "PLAIN_INTERVAL",
    "ProgressView",
    "RateMeter",
    "Watcher",
    "fit_files",
    "fit_line",
    "summary_line",
]

PLAIN_INTERVAL = 5.0  # seconds between two plain lines (a phase change prints one at once)
LIVE_INTERVAL = 0.2
_MIN_BAR = 10


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class RateMeter:
    """Bytes per second from successive BytesWritten readings, smoothed so it does not flicker."""

    def __init__(self, now: float) -> None:
        self._last_bytes = 0
        self._last_t = now
        self.rate = 0.0

    def update(self, nbytes: int, now: float) -> float:
        dt = now - self._last_t
        if dt >= 0.1:
            instant = (nbytes - self._last_bytes) / dt
            self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
            self._last_bytes, self._last_t = nbytes, now
        return self.rate


@dataclass(frozen=True)
class ProgressView:
    """What one line shows, derived from one snapshot (the current phase's own progress)."""

    phase: str
    fraction: float | None  # of the current phase; None while its total is unknown
    bytes_done: int
    bytes_total: int
    items_done: int
    items_total: int
    verified: int
    rate: float
    elapsed: float
    eta: float | None

    @classmethod
    def of(
        cls, snap: Mapping[str, Any], rate: float, verify_mode: str, phase_elapsed: float
    ) -> ProgressView:
        status = snap["Status"]
        done_b, total_b = snap["BytesWritten"], snap["EstimatedBytesToTransfer"]
        items, items_total = snap["FilesTransferred"], snap["EstimatedFilesToTransfer"]
        verified = snap["FilesVerified"]
        fraction: float | None = None
        eta: float | None = None
        if status == "TRANSFERRING":
            if total_b > 0:
                fraction = min(done_b / total_b, 1.0)
                eta = (total_b - done_b) / rate if rate > 0 else None
            elif items_total > 0:
                fraction = min(items / items_total, 1.0)
        elif status == "VERIFYING":
            # ONLY_FILES_TRANSFERRED re-reads what was written; POINT_IN_TIME_CONSISTENT every
            # listed source item. Items are the only unit the snapshot counts there.
            to_verify = items if verify_mode == "ONLY_FILES_TRANSFERRED" else 0
            to_verify = to_verify or snap["FilesListed"]["AtSource"] or items
            if to_verify > 0:
                fraction = min(verified / to_verify, 1.0)
                if fraction > 0:
                    eta = phase_elapsed * (1 - fraction) / fraction
        elif status in ("SUCCESS", "ERROR"):
            fraction = 1.0 if status == "SUCCESS" else None
            eta = 0.0
        return cls(
            phase=status,
            fraction=fraction,
            bytes_done=done_b,
            bytes_total=total_b,
            items_done=items,
            items_total=items_total,
            verified=verified,
            rate=rate,
            elapsed=snap["Result"]["TotalDuration"] / 1000,
            eta=eta,
        )

    def fields(self, listed: int) -> list[tuple[int, str]]:
        """(priority, text) of every field, in display order; lower priority is dropped first."""
        out: list[tuple[int, str]] = []
        if self.fraction is not None:
            out.append((9, f"{self.fraction * 100:3.0f}%"))
        if self.phase in ("LAUNCHING", "PREPARING"):
            out.append((8, f"{listed:,} listed"))
        else:
            out.append((7, _of(self.bytes_done, self.bytes_total)))
            if self.phase == "TRANSFERRING":
                out.append((6, f"{format_size(self.rate)}/s"))
        out.append((4, clock(self.elapsed)))
        if self.phase in ("TRANSFERRING", "VERIFYING"):
            out.append((5, f"ETA {clock(self.eta)}"))
        if self.phase == "VERIFYING":
            out.append((3, f"{self.verified:,} verified"))
        elif self.phase not in ("LAUNCHING", "PREPARING"):
            out.append((3, f"{self.items_done:,}/{self.items_total:,} items"))
        return out


def _of(done: int, total: int) -> str:
    """`4.0/9.0 MiB` (one unit when both share it, to save room), else `512.0 KiB/9.0 MiB`."""
    a, b = format_size(done), format_size(total)
    unit_a, unit_b = a.rsplit(" ", 1)[-1], b.rsplit(" ", 1)[-1]
    return f"{a.rsplit(' ', 1)[0]}/{b}" if unit_a == unit_b else f"{a}/{b}"


def fit_files(files: Sequence[tuple[str, int]], width: int) -> str:
    """The file(s) in flight on one line of at most `width` cells: the first one's path (cut
    from the left, where the least telling part of a path is), its size, and how many more."""
    if not files or width < 8:
        return ""
    (path, size), more = files[0], len(files) - 1
    tail = f" ({format_size(size)})" + (f" +{more} more" if more else "")
    room = width - 2 - len(tail)
    if room < 8:
        tail, room = "", width - 2
    if len(path) > room:
        path = "…" + path[len(path) - room + 1 :]
    return f"↳ {path}{tail}"[:width]


def _label(phase: str) -> str:
    return phase.lower()


def fit_line(view: ProgressView, width: int, listed: int = 0, bar: bool = True) -> Text:
    """One line of at most `width` cells: phase, a bar filling the spare room, then the fields
    of highest priority that fit (each drop keeps the rest in their order)."""
    label = _label(view.phase)
    fields = view.fields(listed)
    kept = list(fields)

    def length(items: Iterable[tuple[int, str]]) -> int:
        return len(label) + sum(1 + len(text) for _, text in items)

    while kept and length(kept) > width:
        kept.remove(min(kept, key=lambda f: f[0]))
    from rich.text import Text

    line = Text(label[:width], style="bold cyan", no_wrap=True, overflow="crop")
    spare = width - length(kept) - 1
    if bar and view.fraction is not None and spare >= _MIN_BAR:
        filled = round(spare * view.fraction)
        line.append(" ")
        line.append("━" * filled, style="green")
        line.append("━" * (spare - filled), style="grey23")
    for _, text in kept:
        line.append(" " + text)
    line.truncate(width)
    return line


def summary_line(result: Mapping[str, Any]) -> str:
    """rsync's last line, in DataSync's words: outcome, items, bytes, time, average rate."""
    seconds = result["Result"]["TotalDuration"] / 1000
    rate = result["BytesWritten"] / seconds if seconds > 0 else 0.0
    failed = sum(result["FilesFailed"].values())
    return (
        f"{result['Status']}: {result['FilesTransferred']:,} items, "
        f"{format_size(result['BytesWritten'])} in {clock(seconds)} ({format_size(rate)}/s), "
        f"{result['FilesVerified']:,} verified, {result['FilesSkipped']:,} skipped, "
        f"{result['FilesDeleted']:,} deleted, {failed:,} failed"
    )


class _Snapshots(Protocol):
    def snapshot(self) -> dict[str, Any]: ...

    def in_flight(self) -> list[tuple[str, int]]: ...


class _LiveLine:
    """A renderable that fits itself to whatever width rich gives it at draw time."""

    def __init__(self) -> None:
        self.view: ProgressView | None = None
        self.listed = 0
        self.files: list[tuple[str, int]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.view is not None:
            yield fit_line(self.view, options.max_width, self.listed)
            files = fit_files(self.files, options.max_width)
            if files and self.view.phase in ("TRANSFERRING", "VERIFYING"):
                from rich.text import Text

                yield Text(files, style="dim", no_wrap=True, overflow="crop")


class Watcher:
    """Samples a transfer on its own thread and draws it: live on a terminal, plain otherwise."""

    def __init__(self, transfer: _Snapshots, stream: TextIO, verify_mode: str) -> None:
        self._transfer = transfer
        self._stream = stream
        self._verify_mode = verify_mode
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dsl-progress", daemon=True)
        from rich.console import Console

        self._console: Console = Console(file=stream, highlight=False)
        self.live = self._console.is_terminal

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        meter = RateMeter(time.monotonic())
        phase, phase_started = "", time.monotonic()
        line = _LiveLine()

        def sample() -> tuple[ProgressView, bool]:
            nonlocal phase, phase_started
            snap = self._transfer.snapshot()
            now = time.monotonic()
            changed = snap["Status"] != phase
            if changed:
                phase, phase_started = snap["Status"], now
            rate = meter.update(snap["BytesWritten"], now)
            line.listed = snap["FilesListed"]["AtSource"]
            line.files = self._transfer.in_flight()
            return ProgressView.of(snap, rate, self._verify_mode, now - phase_started), changed

        if self.live:
            from rich.live import Live

            with Live(line, console=self._console, auto_refresh=False, transient=True) as live:
                while not self._stop.wait(LIVE_INTERVAL):
                    line.view, _ = sample()
                    live.refresh()
            return
        last_print = 0.0
        while not self._stop.wait(LIVE_INTERVAL):
            view, changed = sample()
            now = time.monotonic()
            if changed or now - last_print >= PLAIN_INTERVAL:
                text = fit_line(view, 1000, line.listed, bar=False).plain
                if line.files and view.phase in ("TRANSFERRING", "VERIFYING"):
                    text += "  " + fit_files(line.files, 1000)
                self._stream.write(text + "\n")
                self._stream.flush()
                last_print = now
