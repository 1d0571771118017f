"""Constant C integer expressions of print fmts (flag masks, symbolic values), evaluated by a
small parser instead of ``eval``, with limits: literals and every intermediate value within
64 bits, shift counts below 64, a bounded length and nesting depth.

Grammar (C precedence): ``| ^ & (<< >>) (+ -) (* / %)``, unary ``- + ~ !``, parentheses,
casts to integer types (``(unsigned long)``, ``( gfp_t)``, ``(__force gfp_t)``) and integer
literals (decimal, ``0x`` hex, ``0`` octal) with ``u``/``l`` suffixes.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "c_int"]

MAX_LENGTH = 512  # characters of one expression
MAX_DEPTH = 32  # nested parentheses and unary operators
_BITS = 64

_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)(?P<suffix>[uUlL]*)(?![\w])"
    r"|(?P<cast>\(\s*(?:(?:unsigned|signed|long|int|short|char|__force|\w+_t)\s*)+\))"
    r"|(?P<op><<|>>|[-+~!*/%&|^()]))"
)
_BINARY = (("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"not a constant expression: {expr!r}")
        if m["num"] is not None:
            out.append(m["num"])
        elif m["cast"] is not None:
            out.append("(cast)")
        else:
            out.append(m["op"])
        pos = m.end()
    return out


def _fits(value: int) -> int:
    if not -(1 << _BITS) < value < 1 << _BITS:
        raise ValueError("constant beyond 64 bits")
    return value


def _literal(text: str) -> int:
    if text[:2] in ("0x", "0X"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text[0] == "0":
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if len(digits) > 22:
        raise ValueError("constant beyond 64 bits")
    return _fits(int(digits, base))


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("constant expression ends early")
        self.pos += 1
        return token

    def binary(self, level: int, depth: int) -> int:
        if level == len(_BINARY):
            return self.unary(depth)
        value = self.binary(level + 1, depth)
        while self.peek() in _BINARY[level]:
            op = self.take()
            value = _apply(op, value, self.binary(level + 1, depth))
        return value

    def unary(self, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ValueError("constant expression nested too deeply")
        token = self.take()
        if token == "(cast)":
            return self.unary(depth + 1)
        if token in ("-", "+", "~", "!"):
            value = self.unary(depth + 1)
            return _fits({"-": -value, "+": value, "~": ~value, "!": int(not value)}[token])
        if token == "(":
            value = self.binary(0, depth + 1)
            if self.take() != ")":
                raise ValueError("unbalanced parenthesis in constant expression")
            return value
        if token[0].isdigit():
            return _literal(token)
        raise ValueError(f"unexpected {token!r} in constant expression")


def _apply(op: str, a: int, b: int) -> int:
    if op in ("<<", ">>"):
        if not 0 <= b < _BITS:
            raise ValueError(f"shift count {b} out of range")
        return _fits(a << b if op == "<<" else a >> b)
    if op in ("/", "%"):
        if b == 0:
            raise ValueError("division by zero in constant expression")
        quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncates
        return quotient if op == "/" else a - quotient * b
    return _fits(
        {
            "|": lambda: a | b,
            "^": lambda: a ^ b,
            "&": lambda: a & b,
            "+": lambda: a + b,
            "-": lambda: a - b,
            "*": lambda: a * b,
        }[op]()
    )


def c_int(expr: str) -> int:
    """The value of a constant C integer expression; ``ValueError`` when it is not one, or
    breaks a limit."""
    if len(expr) > MAX_LENGTH:
        raise ValueError("constant expression too long")
    parser = _Parser(_tokens(expr))
    value = parser.binary(0, 0)
    if parser.peek() is not None:
        raise ValueError(f"not a constant expression: {expr!r}")
    return value
