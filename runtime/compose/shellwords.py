"""Splitting a command string into words the way ``shlex.split`` does (POSIX mode), in linear time.

``shlex`` reads one character at a time and grows each word by string concatenation, which is
quadratic on long words: a 1 MB ``command:`` took 30-45 s. This splitter gives the same words
and the same errors, working on runs of ordinary characters with regular expressions:

- space, tab, CR and LF separate words; nothing is a comment;
- ``\\`` outside quotes keeps the next character literally (a newline too);
- ``'...'`` is literal;
- inside ``"..."`` a backslash escapes only ``"`` and ``\\``; before anything else it is kept;
- quotes join the word around them, and ``''`` or ``""`` alone is an empty word.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"[\\'\"]")
_WHITESPACE_RUN = re.compile(r"[ \t\r\n]+")
_ESCAPE_RUN = re.compile(r"(?:\\[\s\S])+")   # backslash-escaped characters outside quotes
_DOUBLE_QUOTED_SPECIAL = re.compile(r"[\"\\]")


def split(text: str) -> list[str]:
    """The words of ``text``; raises :class:`ValueError` as ``shlex.split`` does."""
    words: list[str] = []
    parts: list[str] = []   # pieces of the word being read
    in_word = False         # a word has begun (it may still be empty: '')
    i, n = 0, len(text)
    while i < n:
        special = _SPECIAL.search(text, i)
        end = special.start() if special else n
        if end > i:
            # Plain text up to the next quote or backslash: whitespace splits it, at C speed.
            pieces = _WHITESPACE_RUN.split(text[i:end])
            if len(pieces) == 1:
                parts.append(pieces[0])
                in_word = True
            else:
                if pieces[0]:
                    parts.append(pieces[0])
                    in_word = True
                if in_word:
                    words.append("".join(parts))
                words.extend(pieces[1:-1])  # between two whitespace runs: never empty
                parts = [pieces[-1]] if pieces[-1] else []
                in_word = bool(pieces[-1])
        if special is None:
            break
        in_word = True
        c = text[end]
        if c == "\\":
            escapes = _ESCAPE_RUN.match(text, end)
            if escapes is None:  # a backslash as the last character
                raise ValueError("No escaped character")
            parts.append(escapes.group(0)[1::2])
            i = escapes.end()
        elif c == "'":
            close = text.find("'", end + 1)
            if close < 0:
                raise ValueError("No closing quotation")
            parts.append(text[end + 1 : close])
            i = close + 1
        else:
            i = _double_quoted(text, end + 1, parts)
    if in_word:
        words.append("".join(parts))
    return words


def _double_quoted(text: str, i: int, parts: list[str]) -> int:
    """Append the body of a ``"`` string starting at ``i``; the index after its closing quote."""
    n = len(text)
    while True:
        m = _DOUBLE_QUOTED_SPECIAL.search(text, i)
        if m is None:
            raise ValueError("No closing quotation")
        j = m.start()
        parts.append(text[i:j])
        if text[j] == '"':
            return j + 1
        if j + 1 >= n:
            raise ValueError("No escaped character")
        escaped = text[j + 1]
        parts.append(escaped if escaped in '"\\' else "\\" + escaped)
        i = j + 2
