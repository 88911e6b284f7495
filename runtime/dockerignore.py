"""``.dockerignore`` patterns: parsing and matching, as Docker reads them (moby/patternmatcher).

One pattern a line, ``#`` comments, ``!`` re-includes, a leading ``/`` is ignored, ``*`` and
``?`` never match ``/``, ``**`` matches any number of directories, and a pattern matching a
directory matches everything below it. The last matching pattern decides. A UTF-8 byte order
mark before the first line is dropped, and a file that is not UTF-8 matches byte for byte
(names are compared in the file system's encoding, undecodable bytes as surrogates). A
pattern Docker refuses (``[z-a]``, an unclosed ``[``) is refused with the file and line.

Matching never backtracks without bound: a pattern is split at ``/`` into segments, ``**``
segments are matched against path segments with the classic one-star glob algorithm
(linear backtracking), and inside one segment every ``*`` after the first becomes an atomic
lazy group, so ``*a*a*a*b`` or ``**/**/**/*a`` against long names costs time proportional
to the name, not exponential in the number of stars. A ``**`` inside a segment (``a**b``)
crosses directories as Docker's does: it reads as ``a*b`` or ``a*/**/*b``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import BuildContextError

UTF8_BOM = "\ufeff"
# A pattern with many "**" inside names expands into alternatives (two per such "**").
_MAX_ALTERNATIVES = 256

# One path segment matcher: a literal name, a compiled regex, or None for "**" (any number of
# whole segments, none included).
Segment = str | re.Pattern[str] | None


@dataclass(frozen=True)
class IgnorePattern:
    text: str
    exclusion: bool                                # True for "!pattern": re-include what matches
    alternatives: tuple[tuple[Segment, ...], ...]  # the pattern matches if any alternative does

    def matches(self, path: str) -> bool:
        """True if ``path`` (a context-relative slash path) or one of its parent directories matches."""
        parts = path.split("/")
        return any(self.matches_exactly(parts[:i]) for i in range(len(parts), 0, -1))

    def matches_exactly(self, parts: Sequence[str]) -> bool:
        """True if the path made of ``parts`` itself matches (its parents are not tried)."""
        return any(_match_segments(alt, parts) for alt in self.alternatives)


def parse_dockerignore(text: str, *, source: str = ".dockerignore", service: str | None = None) -> list[IgnorePattern]:
    """The patterns of a ``.dockerignore`` text; a pattern Docker refuses raises ``BuildContextError``."""
    patterns = []
    if text.startswith(UTF8_BOM):
        text = text[len(UTF8_BOM):]
    # Lines as Go's bufio.ScanLines splits them: on "\n", without a trailing "\r".
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = _clean(line)
        if not line:
            continue
        try:
            alternatives = _compile(line)
        except _BadPattern as exc:
            whose = f" of service {service!r}" if service else ""
            raise BuildContextError(
                f"The build context{whose} cannot be used: {source} line {number}: the pattern {raw.strip()!r} "
                f"is not valid ({exc}). Fix or remove that line; `docker build` refuses it too.",
                service=service, path=source,
            ) from None
        patterns.append(IgnorePattern(raw.strip(), exclusion, alternatives))
    return patterns


def is_ignored(path: str, patterns: list[IgnorePattern]) -> bool:
    """Whether a context-relative slash path is excluded (the last matching pattern wins)."""
    ignored = False
    for p in patterns:
        if p.matches(path):
            ignored = not p.exclusion
    return ignored


def _clean(pattern: str) -> str:
    # Like Go's filepath.Clean, then relative to the context root: "/a/./b/" -> "a/b".
    parts: list[str] = []
    for part in pattern.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


class _BadPattern(ValueError):
    pass


# Tokens of a pattern: a regex for one character (never "/"), "*", "**" or "/".
_STAR, _DSTAR, _SEP = "*", "**", "/"


def _tokens(pattern: str) -> list[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                while i < n and pattern[i] == "*":   # "***" is "**"
                    i += 1
                out.append(_DSTAR)
                continue
            out.append(_STAR)
        elif c == "/":
            out.append(_SEP)
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            # A "]" right after "[" or "[!" is a member, as in Go: "[]a]" is "]" or "a".
            end = pattern.find("]", i + 3 if pattern.startswith(("[!", "[^"), i) else i + 2)
            if end == -1:
                raise _BadPattern("a '[' is never closed by ']'")
            body = pattern[i + 1 : end]
            if body.startswith(("!", "^")):
                body = "^" + body[1:]
            cls = "[" + body.replace("\\", "\\\\") + "]"
            try:
                re.compile(cls)
            except re.error as exc:
                raise _BadPattern(str(exc).split(" at position")[0]) from None
            out.append(cls)
            i = end
        elif c == "\\":
            if i + 1 == n:
                raise _BadPattern("it ends with an escaping '\\'")
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return out


def _compile(pattern: str) -> tuple[tuple[Segment, ...], ...]:
    tokens = _tokens(pattern)
    segments: list[list[str]] = [[]]
    for t in tokens:
        if t == _SEP:
            segments.append([])
        else:
            segments[-1].append(t)
    # "dir/**" is "dir/" and then something (Docker's regex "dir/.*"): one or more segments.
    if len(segments) > 1 and segments[-1] == [_DSTAR]:
        segments[-1:] = [[_STAR], [_DSTAR]]
    alternatives: list[list[list[str] | None]] = [[]]
    for seg in segments:
        options = _expand(seg)
        alternatives = [alt + opt for alt in alternatives for opt in options]
        if len(alternatives) > _MAX_ALTERNATIVES:
            raise _BadPattern("it has too many '**' inside names")
    compiled = {tuple(_segment(s) for s in _squeeze(alt)) for alt in alternatives}
    return tuple(sorted(compiled, key=repr))


def _squeeze(alt: list[list[str] | None]) -> list[list[str] | None]:
    """Adjacent "**" segments as one: "**/**/x" matches exactly what "**/x" does."""
    out: list[list[str] | None] = []
    for seg in alt:
        if seg is None and out and out[-1] is None:
            continue
        out.append(seg)
    return out


def _expand(seg: list[str]) -> list[list[list[str] | None]]:
    """One pattern segment as lists of plain segments (None: any number of segments)."""
    if seg == [_DSTAR]:
        return [[None]]
    if _DSTAR not in seg:
        return [[seg]]
    # X**Y spans zero directories (X*Y, one segment) or some (X* / ** / *Y).
    k = seg.index(_DSTAR)
    head, tail = seg[:k], seg[k + 1 :]
    out: list[list[list[str] | None]] = []
    for rest in _expand([*head, _STAR, *tail]):
        out.append(rest)
    for rest in _expand([_STAR, *tail]):
        out.append([[*head, _STAR], None, *rest])
    return out


def _segment(seg: list[str] | None) -> Segment:
    if seg is None:
        return None
    if all(t != _STAR and not t.startswith("[") for t in seg):
        return "".join(_unescape(t) for t in seg)  # a plain name: compare strings
    pieces: list[str] = [""]
    for t in seg:
        if t == _STAR:
            pieces.append("")
        else:
            pieces[-1] += t
    if len(pieces) == 1:
        return re.compile("(?s:" + pieces[0] + ")")
    # The first and last pieces are anchored; each middle piece is found at its leftmost place
    # and never reconsidered (atomic group). For pieces of fixed length separated by "*" the
    # leftmost place is always a right one, and matching stays linear in the name's length.
    middle = "".join(f"(?>.*?{p})" for p in pieces[1:-1] if p)
    return re.compile("(?s:" + pieces[0] + middle + ".*" + pieces[-1] + ")")


def _unescape(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token, flags=re.S)


def _match_one(seg: str | re.Pattern[str], name: str) -> bool:
    return seg == name if isinstance(seg, str) else seg.fullmatch(name) is not None


def _match_segments(pattern: Sequence[Segment], parts: Sequence[str]) -> bool:
    """Glob matching over segments, where None matches any run of segments (the greedy
    one-star algorithm: after a mismatch only the latest None takes one more segment)."""
    if None not in pattern and len(pattern) != len(parts):
        return False
    # Cheap rejections first: a pattern's fixed first and last segments must match the path's.
    first, last = pattern[0], pattern[-1]
    if first is not None and not _match_one(first, parts[0]):
        return False
    if last is not None and not _match_one(last, parts[-1]):
        return False
    p = s = 0
    star_p, star_s = -1, 0
    while s < len(parts):
        if p < len(pattern):
            seg = pattern[p]
            if seg is None:
                star_p, star_s = p, s
                p += 1
                continue
            if _match_one(seg, parts[s]):
                p += 1
                s += 1
                continue
        if star_p == -1:
            return False
        p, star_s = star_p + 1, star_s + 1
        s = star_s
    while p < len(pattern) and pattern[p] is None:
        p += 1
    return p == len(pattern)
