"""Follow every service container's output into the :class:`~runtime.logs.LogPresenter`.

One daemon thread per followed container reads the engine's log stream
(``GET /containers/{id}/logs?follow=1&timestamps=1``) and hands whole lines to the presenter.
The pure parts are separate so they can be tested with plain bytes:

* :class:`FrameDecoder` splits the engine's multiplexed stream (8-byte headers) into
  ``(stream, payload)`` frames, so stdout and stderr stay apart;
* :class:`LineAssembler` buffers partial chunks per stream until a newline, and strips the
  RFC 3339 timestamp prefix the engine adds;
* :class:`Deduper` remembers the last timestamp printed (and, for lines sharing that exact
  timestamp, how many of each were printed) so re-attaching after a restart never prints a
  line twice.

Deduplication is kept per *container*, not per service: a new container of a service has a
fresh log, so it cannot repeat anything; keying by container also keeps an old and a new
container that overlap during a start-first update from hiding each other's lines.

A follow thread ends when its stream ends (the container stopped), after one plain
(non-follow) read that picks up whatever the engine had not yet streamed. The supervisor calls
:meth:`LogFollower.follow` after every (re)start; if that call finds the container still
followed, the existing thread re-attaches at once instead of a second thread starting.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors
from docker.types.daemon import CancellableStream

from runtime.logs import LogPresenter

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")
# Re-attach a little before the last timestamp seen: the engine's `since` filter is inclusive,
# and a small overlap costs only lines the Deduper drops, never a missed one.
_SINCE_MARGIN_NS = 1_000_000
# Dedup state of containers no longer followed is kept for this many recent containers per
# service (a restarted container is usually followed again within seconds).
_KEEP_CONTAINERS_PER_SERVICE = 4


# -- pure parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One whole line of a container's output."""

    stream: str            # "stdout" or "stderr"
    text: str              # without the timestamp prefix and without the newline
    ts_ns: int | None      # engine timestamp, nanoseconds since the epoch; None if it had none

    @property
    def time(self) -> float | None:
        return None if self.ts_ns is None else self.ts_ns / 1e9


def parse_timestamp(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp as the engine writes it.

    The engine writes ``2024-05-01T10:00:00.123456789Z``; Go's RFC3339Nano also trims trailing
    zeros (``.1234Z``, or no fraction at all) and other writers use ``+02:00`` offsets, so all of
    those are accepted. Parsing by hand keeps the nanoseconds that ``datetime`` would drop.
    """
    if len(stamp) < 20 or stamp[10] not in "Tt":
        raise ValueError(f"not an RFC 3339 timestamp: {stamp!r}")
    head, rest = stamp[:19], stamp[19:]
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac, rest = rest[1:end], rest[end:]
        if not frac or len(frac) > 9:
            raise ValueError(f"bad fractional seconds in timestamp: {stamp!r}")
    if rest in ("Z", "z"):
        rest = "+00:00"
    try:
        whole = datetime.fromisoformat(head + rest)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {stamp!r}") from None
    if whole.tzinfo is None:
        raise ValueError(f"timestamp has no time zone: {stamp!r}")
    seconds = int(whole.timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0") or "0")


def split_timestamp(raw: str) -> tuple[int | None, str]:
    """``(ts_ns, text)`` of a line the engine prefixed with ``<timestamp> ``.

    A line without a parseable prefix is returned whole with ``None``: showing it beats
    dropping it.
    """
    stamp, sep, text = raw.partition(" ")
    if sep:
        try:
            return parse_timestamp(stamp), text
        except ValueError:
            pass
    return None, raw


class FrameDecoder:
    """Incremental decoder of the engine's multiplexed stdout/stderr stream.

    Each frame is an 8-byte header (stream id, 3 zero bytes, big-endian payload length)
    followed by the payload. Chunks may cut headers and payloads anywhere.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buf += data
        frames: list[tuple[str, bytes]] = []
        while len(self._buf) >= _HEADER.size:
            stream_id, length = _HEADER.unpack_from(self._buf)
            end = _HEADER.size + length
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[_HEADER.size:end])
            del self._buf[:end]
            if payload:
                frames.append((_STREAMS.get(stream_id, "stdout"), payload))
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)


class LineAssembler:
    """Turns chunks of output into whole :class:`LogLine` s, one buffer per stream.

    Lines are decoded only once whole, so a UTF-8 character cut between two chunks survives.
    """

    def __init__(self, *, timestamps: bool = True) -> None:
        self._timestamps = timestamps
        self._partial: dict[str, bytearray] = {}

    def feed(self, stream: str, data: bytes) -> list[LogLine]:
        buf = self._partial.setdefault(stream, bytearray())
        buf += data
        cut = buf.rfind(b"\n")
        if cut < 0:
            return []
        whole = bytes(buf[: cut + 1])
        del buf[: cut + 1]
        return [self._make(stream, raw) for raw in whole.split(b"\n")[:-1]]

    def flush(self) -> list[LogLine]:
        """The partial lines left when the stream ends (output without a final newline)."""
        lines = [self._make(stream, bytes(buf)) for stream, buf in self._partial.items() if buf]
        self._partial.clear()
        return lines

    def _make(self, stream: str, raw: bytes) -> LogLine:
        text = raw.decode("utf-8", errors="replace")
        if text.endswith("\r"):
            text = text[:-1]
        ts, body = split_timestamp(text) if self._timestamps else (None, text)
        return LogLine(stream, body, ts)


class Deduper:
    """Decides which lines of one container were already printed by an earlier attachment.

    Call :meth:`attach` at the start of every attachment, then :meth:`accept` for each line in
    stream order. An attachment starts with a *replay* of lines at or before the last timestamp
    printed (the engine's ``since`` is inclusive and timestamps can repeat); those are skipped,
    except that for the exact last timestamp each ``(stream, text)`` is skipped only as many
    times as it was printed. The first newer line ends the replay: from then on every line is
    new, whatever its timestamp (so a clock stepped back by NTP cannot hide fresh output).
    """

    def __init__(self) -> None:
        self.last_ns: int | None = None
        self._printed_at_last: Counter[tuple[str, str]] = Counter()
        self._replaying = False
        self._snapshot_ns: int | None = None
        self._snapshot_printed: Counter[tuple[str, str]] = Counter()
        self._replayed: Counter[tuple[str, str]] = Counter()

    @property
    def since_ns(self) -> int | None:
        """Where the next attachment should start reading, or None for the whole log."""
        return None if self.last_ns is None else max(0, self.last_ns - _SINCE_MARGIN_NS)

    def attach(self) -> None:
        self._replaying = self.last_ns is not None
        self._snapshot_ns = self.last_ns
        self._snapshot_printed = Counter(self._printed_at_last)
        self._replayed = Counter()

    def accept(self, line: LogLine) -> bool:
        if line.ts_ns is None:
            return True   # nothing to compare; printing twice beats losing a line
        if self._replaying and self._snapshot_ns is not None:
            if line.ts_ns < self._snapshot_ns:
                return False
            if line.ts_ns == self._snapshot_ns:
                key = (line.stream, line.text)
                self._replayed[key] += 1
                if self._replayed[key] <= self._snapshot_printed[key]:
                    return False
            else:
                self._replaying = False
        self._record(line.ts_ns, (line.stream, line.text))
        return True

    def _record(self, ts_ns: int, key: tuple[str, str]) -> None:
        if self.last_ns is None or ts_ns > self.last_ns:
            self.last_ns = ts_ns
            self._printed_at_last = Counter({key: 1})
        elif ts_ns == self.last_ns:
            self._printed_at_last[key] += 1
        # Older than the newest printed (clock stepped back): keep the newest as the resume
        # point, since the engine's `since` filter works on timestamps, not on positions.


def since_param(since_ns: int) -> str:
    """The engine's ``since`` query value (``seconds.nanoseconds``) without float rounding."""
    return f"{since_ns // 1_000_000_000}.{since_ns % 1_000_000_000:09d}"


# -- engine I/O -------------------------------------------------------------------------------


def open_log_stream(
    client: docker.DockerClient, container_id: str, *, since_ns: int | None = None, follow: bool = True
) -> CancellableStream:
    """A cancellable iterator of ``(stream, bytes)`` chunks of a container's log.

    docker-py's ``logs(stream=True)`` drops the stream id of each frame, so this asks for the
    same endpoint through the low-level client and decodes the frames itself. A TTY container
    has no frames (the engine merges its output into stdout).
    """
    api = client.api
    tty = bool(api.inspect_container(container_id)["Config"].get("Tty"))
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": int(follow), "tail": "all"}
    if since_ns is not None:
        params["since"] = since_param(since_ns)
    res = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
    api._raise_for_status(res)
    # A followed log can be silent for hours: without this the client's read timeout ends it.
    api._disable_socket_timeout(api._get_raw_response_socket(res))
    return CancellableStream(_decode(_raw_chunks(res.raw), tty), res)


def _raw_chunks(raw: Any) -> Iterator[bytes]:
    if hasattr(raw, "read1"):
        # urllib3 2: returns as soon as any bytes arrived, so lines are not held back.
        while chunk := raw.read1(65536):
            yield chunk
    else:
        yield from raw.read_chunked()


def _decode(chunks: Iterable[bytes], tty: bool) -> Iterator[tuple[str, bytes]]:
    if tty:
        for chunk in chunks:
            yield "stdout", chunk
        return
    decoder = FrameDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)


@dataclass
class _Follow:
    service: str
    container_id: str
    thread: threading.Thread | None = None
    stream: CancellableStream | None = None
    rearm: bool = False
    stopped: bool = False
    first_since_ns: int | None = None


class LogFollower:
    """Streams the output of service containers into a presenter, one thread per container."""

    def __init__(self, client: docker.DockerClient, presenter: LogPresenter) -> None:
        self._client = client
        self._presenter = presenter
        self._lock = threading.Lock()
        self._follows: dict[str, _Follow] = {}            # container id -> live follow
        self._dedup: dict[str, dict[str, Deduper]] = {}   # service -> container id -> state
        self._unattached: frozenset[str] = frozenset()    # services whose output is not shown

    def set_unattached(self, services: Iterable[str]) -> None:
        """Services not to follow (compose ``attach: false``); a follow of one of them ends now."""
        with self._lock:
            self._unattached = frozenset(services)
            followed = {f.service for f in self._follows.values()}
        for service in followed & self._unattached:
            self.stop(service)

    def follow(self, service: str, container_id: str, *, since: float | None = None) -> None:
        """Print ``service``'s output from ``container_id``; idempotent while it is followed.

        Call it after every start of the container: a call while the container is already
        followed makes its thread re-attach (no second thread, no repeated lines). ``since`` (epoch
        seconds) limits the first attachment to newer output, e.g. so a restarted supervisor
        does not reprint a running container's whole log; later attachments resume after the
        last line printed.
        """
        with self._lock:
            if service in self._unattached:
                return
            current = self._follows.get(container_id)
            if current is not None and not current.stopped:
                # Re-attach now rather than when the current stream ends: after a restart the
                # old stream may never end (an engine that missed the exit), and the Deduper
                # makes the extra attachment invisible.
                current.rearm = True
                if current.stream is not None:
                    with contextlib.suppress(Exception):
                        current.stream.close()
                return
            f = _Follow(service, container_id)
            if since is not None:
                f.first_since_ns = max(0, int(since * 1e9))
            f.thread = threading.Thread(
                target=self._run, args=(f,), name=f"logs-{service}-{container_id[:12]}", daemon=True
            )
            self._follows[container_id] = f
            self._deduper(service, container_id)
            # Started under the lock so stop() and wait() never see a registered thread that
            # cannot be joined yet; the thread's first step waits for this lock anyway.
            f.thread.start()

    def following(self, service: str | None = None) -> list[str]:
        """Container ids currently followed (of one service, or all)."""
        with self._lock:
            return [cid for cid, f in self._follows.items() if service in (None, f.service)]

    def stop(self, service: str | None = None, *, timeout: float = 5.0) -> None:
        """Stop following ``service`` (every service if None) and wait for the threads to end."""
        with self._lock:
            victims = [f for f in self._follows.values() if service in (None, f.service)]
            for f in victims:
                f.stopped = True
                f.rearm = False
                self._follows.pop(f.container_id, None)
        for f in victims:
            if f.stream is not None:
                # Unblocks the thread's read at once. Fails only for an already closed stream or
                # an SSH transport; either way the thread ends when the container stops.
                with contextlib.suppress(Exception):
                    f.stream.close()
        for f in victims:
            if f.thread is not None and f.thread is not threading.current_thread():
                f.thread.join(timeout)

    def stop_all(self, *, timeout: float = 5.0) -> None:
        self.stop(None, timeout=timeout)

    def wait(self, service: str | None = None, timeout: float | None = None) -> bool:
        """Block until the follow threads (of one service, or all) end on their own, i.e. their
        containers stopped; True if they all did within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [f.thread for f in self._follows.values()
                           if f.thread is not None and service in (None, f.service)]
            if not threads:
                return True
            for t in threads:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                t.join(left)
                if t.is_alive():
                    return False
            # A thread that re-attached is the same thread; one that ended may have been
            # replaced by a new follow() meanwhile: look again.

    # -- internals -------------------------------------------------------------------------

    def _deduper(self, service: str, container_id: str) -> Deduper:
        # Caller holds the lock.
        per_service = self._dedup.setdefault(service, {})
        dedup = per_service.pop(container_id, None) or Deduper()
        per_service[container_id] = dedup   # re-inserted: dict order is recency order
        while len(per_service) > _KEEP_CONTAINERS_PER_SERVICE:
            del per_service[next(iter(per_service))]
        return dedup

    def _run(self, f: _Follow) -> None:
        try:
            while True:
                self._attach_once(f)
                with self._lock:
                    if f.stopped or not f.rearm:
                        return
                    f.rearm = False
        except docker.errors.NotFound:
            pass   # the container was removed: nothing left to follow
        except Exception as exc:   # a follower thread must report, never die silently
            if not f.stopped:
                self._presenter.runtime(
                    f"stopped following the logs of {f.service} ({f.container_id[:12]}): {exc}",
                    level="warning",
                )
        finally:
            with self._lock:
                if self._follows.get(f.container_id) is f:
                    del self._follows[f.container_id]

    def _attach_once(self, f: _Follow) -> None:
        with self._lock:
            dedup = self._deduper(f.service, f.container_id)
        if self._read(f, dedup, follow=True) and not f.stopped:
            # The followed stream ended: the container stopped, or follow() asked for a fresh
            # attachment. The engine can end a follow before the last message of an exiting
            # container is readable, and a cut stream may leave a line half read, so finish
            # with one plain read of everything since the last line printed: it is complete as
            # of now, and the Deduper drops what was already shown.
            self._read(f, dedup, follow=False)

    def _read(self, f: _Follow, dedup: Deduper, *, follow: bool) -> bool:
        """One attachment; False if it was abandoned because the follow was stopped."""
        dedup.attach()
        since_ns = dedup.since_ns if dedup.since_ns is not None else f.first_since_ns
        stream = open_log_stream(self._client, f.container_id, since_ns=since_ns, follow=follow)
        with self._lock:
            if f.stopped:
                stream.close()
                return False
            if follow:
                # Only followed streams can block for long, so only they are registered for
                # stop() and follow() to cut; a plain read ends by itself and is never cut,
                # which is what makes its last partial line trustworthy.
                f.stream = stream
        assembler = LineAssembler()
        try:
            for stream_name, data in stream:
                self._deliver(f, dedup, assembler.feed(stream_name, data))
            if not follow:
                # Only a plain read's last partial line is known to be a whole message; a
                # followed stream's may have been cut, and the plain read that follows shows it.
                self._deliver(f, dedup, assembler.flush())
        finally:
            with self._lock:
                f.stream = None
            with contextlib.suppress(Exception):
                stream.close()
        return not f.stopped

    def _deliver(self, f: _Follow, dedup: Deduper, lines: list[LogLine]) -> None:
        for line in lines:
            if not f.stopped and dedup.accept(line):
                self._presenter.line(f.service, line.text, stream=line.stream, time=line.time)
