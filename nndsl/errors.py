"""One error type for everything a user can get wrong, rendered as FILE:LINE:COL with a caret."""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of source text: 1-based line and column, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.line, self.column, self.end_line, self.end_column)


class NndslError(Exception):
    """A problem with the user's input: a model file, a data file, a flag.

    `span` locates it in `source` (the text of `filename`); either may be missing, for
    instance for a command-line flag, and then the message stands on one line.
    """

    def __init__(self, message: str, span: Span | None = None, *, filename: str | None = None,
                 source: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint                # how to fix it on the command line, which the CLI adds
        self.span = span
        self.filename = filename
        self.source = source

    def located(self, filename: str | None, source: str | None) -> "NndslError":
        """Fill in the file this error belongs to, unless it already names one."""
        if self.filename is None:
            self.filename = filename
            self.source = source
        return self

    def render(self, kind: str = "error", hint: bool = False) -> str:
        """The message as `FILE:LINE:COL: error: ...`, the source line and a caret under the span
        (`kind` "note" for a message that points at the source without being an error; `hint`
        adds the command-line hint, for the CLI)."""
        message = f"{self.message} ({self.hint})" if hint and self.hint else self.message
        if self.span is None:
            where = f"{self.filename}: " if self.filename else ""
            return f"{where}{kind}: {message}"
        head = f"{self.filename or '<input>'}:{self.span.line}:{self.span.column}: {kind}: {message}"
        lines = (self.source or "").splitlines()
        if not 1 <= self.span.line <= len(lines):
            return head
        text = lines[self.span.line - 1].expandtabs(1)
        end = self.span.end_column if self.span.end_line == self.span.line else len(text) + 1
        width = max(1, min(end, len(text) + 1) - self.span.column)
        return f"{head}\n    {text}\n    {' ' * (self.span.column - 1)}{'^' * width}"

    def __str__(self) -> str:
        return self.render()


def file_error(path, message: str) -> NndslError:
    """A problem with a whole file (missing, unreadable, wrong kind): `FILE: error: message`."""
    return NndslError(message, filename=str(path))


def closest(word: str, choices) -> str | None:
    """The choice most like `word`, ignoring case (`W` for `w`, `ReLU` for `relu`), if one is close."""
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None
