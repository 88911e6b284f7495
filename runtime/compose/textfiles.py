"""Reading the small text files a compose file points at (``.env``, ``env_file:``), safely.

A path can name anything: a FIFO that blocks ``open`` until someone writes to it, a device
such as ``/dev/zero`` that never ends, a multi-gigabyte file. Only regular files are read, the
open never blocks (``O_NONBLOCK``), and at most :data:`MAX_ENV_FILE_BYTES` are accepted.
"""

from __future__ import annotations

import os
import stat

# Far more than any list of variables needs, small enough to read and parse in well under a second.
MAX_ENV_FILE_BYTES = 1024 * 1024


class UnreadableFile(Exception):
    """The file cannot be used; the message says why and what to do (without its content)."""


def read_text_file(path: str, limit: int = MAX_ENV_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``; raises FileNotFoundError or UnreadableFile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFile(f"it cannot be opened ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("it is not a regular file (a pipe, device or directory); point at a file")
        if info.st_size > limit:
            raise UnreadableFile(f"it is larger than {limit // 1024} KiB ({info.st_size} bytes); keep it smaller")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise UnreadableFile(f"it is larger than {limit // 1024} KiB; keep it smaller")
            chunks.append(chunk)
    except OSError as exc:
        raise UnreadableFile(f"it cannot be read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"it is not UTF-8 text (byte {exc.start} is not valid)") from exc
