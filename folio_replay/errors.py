"""The one error type users see: bad input, reported as one line naming the file and place."""

from __future__ import annotations


class InputError(Exception):
    """Bad or missing input. Rendered by the CLI as ``FILE:LINE: message`` with exit code 2."""

    def __init__(
        self, path: object, message: str, line: int | None = None, offset: int | None = None
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.offset = offset
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``FILE:LINE: message`` (or ``FILE@OFFSET`` for binary input)."""
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        elif self.offset is not None:
            where += f"@{self.offset:#x}"
        return f"{where}: {self.message}"
