"""The strategy spec grammar, used in TOML files and on the command line.

A tokenizer and a small recursive-descent parser; every error is a :class:`ConfigError` that shows the spec
with a caret under the bad token and says what was expected. Loosest binding first::

    spec      := stage (',' stage)*                 schedule: every entry but the last has '@cond'
    stage     := pipeline ['@' cond]                cond: 0-2 | 3 | labeled<100
    pipeline  := (sum | top) ['>>' pipeline]        top(A, m) >> B: two-stage (m = 500 or 10k)
    sum       := ['-'] term (('+' | '-') term)*     weighted sum of rank-normalised scores
    term      := [NUMBER '*'] product
    product   := atom ('*' atom)*                   product of rank-normalised scores
    atom      := NAME ['(' key=literal, ... ')'] | '(' spec ')'
    top       := 'top' '(' pipeline ',' (INT | NUMBER 'k') ')'

Strategy names are kebab-case (``least-confidence``), so ``-`` is part of a name when it joins two name
characters; written between spaces (``margin - random``) it subtracts.

>>> parse_strategy("top(margin, 10k) >> random(seed=3)").spec
'top(margin, 10k) >> random(seed=3)'
>>> parse_strategy("0.7*margin +")
Traceback (most recent call last):
...
alloop.errors.ConfigError: Invalid strategy spec: expected a strategy name after '+'.
  0.7*margin +
              ^
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from alloop.errors import ConfigError
from alloop.strategies._base import Strategy

__all__ = ["parse_strategy"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SINGLE = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", "+": "PLUS", "-": "MINUS", "*": "STAR", "@": "AT", "<": "LT"}


@dataclass(frozen=True)
class Token:
    kind: str  # NAME NUMBER COUNT ARGS LPAREN RPAREN COMMA PLUS MINUS STAR SHIFT AT LT END
    text: str
    pos: int


def spec_error(spec: str, pos: int, message: str) -> ConfigError:
    """A ConfigError showing ``spec`` with a caret under column ``pos``."""
    shown = spec.replace("\n", " ").replace("\t", " ")
    return ConfigError(f"{message}\n  {shown}\n  {' ' * max(0, min(pos, len(shown)))}^")


def tokenize(spec: str) -> list[Token]:
    """Tokens of ``spec``; a NAME directly followed by ``(...)`` (except ``top``) gets one ARGS token."""
    out: list[Token] = []
    i, n = 0, len(spec)
    while i < n:
        c = spec[i]
        if c.isspace():
            i += 1
            continue
        if c.isascii() and (c.isalpha() or c == "_"):  # str.isalpha() also accepts non-ASCII letters
            m = _NAME.match(spec, i)
            assert m is not None
            out.append(Token("NAME", m.group(), i))
            i = m.end()
            j = i
            while j < n and spec[j].isspace():
                j += 1
            if j < n and spec[j] == "(" and m.group() != "top":
                end = _matching_paren(spec, j)
                out.append(Token("ARGS", spec[j : end + 1], j))
                i = end + 1
            continue
        if c in "0123456789" or (c == "." and i + 1 < n and spec[i + 1] in "0123456789"):
            m = _NUMBER.match(spec, i)
            assert m is not None
            end = m.end()
            if end < n and spec[end] == "k" and not (end + 1 < n and (spec[end + 1].isalnum() or spec[end + 1] == "_")):
                out.append(Token("COUNT", spec[i : end + 1], i))
                i = end + 1
            else:
                out.append(Token("NUMBER", m.group(), i))
                i = end
            continue
        if spec.startswith(">>", i):
            out.append(Token("SHIFT", ">>", i))
            i += 2
            continue
        if c in _SINGLE:
            out.append(Token(_SINGLE[c], c, i))
            i += 1
            continue
        hint = " (a two-stage spec uses '>>')" if c == ">" else ""
        raise spec_error(spec, i, f"Invalid strategy spec: unexpected character {c!r}{hint}.")
    out.append(Token("END", "", n))
    return out


def _matching_paren(spec: str, start: int) -> int:
    depth, quote, i = 0, "", start
    while i < len(spec):
        c = spec[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise spec_error(
        spec,
        start,
        f"Strategy spec {spec!r} must look like 'name' or 'name(key=value, ...)': this '(' is never closed.",
    )


@dataclass
class _Top:
    first: Strategy
    m: Any
    pos: int


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens = tokenize(spec)
        self.i = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def after(self) -> str:
        if self.i == 0:
            return "at the start"
        prev = self.tokens[self.i - 1]
        return f"after {prev.text!r}" if prev.kind != "ARGS" else f"after {self.tokens[self.i - 2].text + prev.text!r}"

    def fail(self, message: str, tok: Token | None = None) -> NoReturn:
        tok = tok or self.tok
        raise spec_error(self.spec, tok.pos, f"Invalid strategy spec: {message}.")

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            self.fail(f"expected {what} {self.after()}")
        return self.advance()

    # -- grammar
    def parse(self) -> Strategy:
        if self.tok.kind == "END":
            raise ConfigError("A strategy spec is empty; give a name such as 'margin'.")
        node = self.schedule()
        if self.tok.kind != "END":
            if self.tok.kind == "RPAREN":
                self.fail("this ')' closes nothing")
            self.fail(f"expected an operator (+, -, *, >>, @ or ',') or the end of the spec {self.after()}")
        return node

    def schedule(self) -> Strategy:
        first_tok = self.tok
        stages = [self.stage()]
        while self.tok.kind == "COMMA":
            self.advance()
            stages.append(self.stage())
        if len(stages) == 1:
            part, cond, _ = stages[0]
            if cond is not None:
                self.fail(
                    "expected ',' and a default strategy after the schedule condition (e.g. 'coreset@0-2, margin')"
                )
            return part
        for _part, cond, tok in stages[:-1]:
            if cond is None:
                self.fail("every schedule entry but the last needs a condition such as '@0-2' or '@labeled<100'", tok)
        last_part, last_cond, _ = stages[-1]
        if last_cond is not None:
            self.fail("the last schedule entry is the default and takes no '@' condition", last_cond[1])
        del first_tok
        from alloop.strategies.compose import Schedule

        return Schedule(parts=tuple(p for p, _, _ in stages), when=tuple(c[0] for _, c, _ in stages[:-1] if c))

    def stage(self) -> tuple[Strategy, tuple[str, Token] | None, Token]:
        start = self.tok
        part = self.pipeline()
        if self.tok.kind != "AT":
            return part, None, start
        at = self.advance()
        return part, (self.condition(), at), start

    def _int(self, what: str) -> int:
        tok = self.tok
        if tok.kind != "NUMBER" or not tok.text.isdigit():
            self.fail(f"expected {what} {self.after()}")
        self.advance()
        return int(tok.text)

    def condition(self) -> str:
        if self.tok.kind == "NAME" and self.tok.text == "labeled":
            self.advance()
            self.expect("LT", "'<' and a labeled-set size (e.g. 'labeled<100')")
            return f"labeled<{self._int('a whole number of labels')}"
        if self.tok.kind != "NUMBER":
            self.fail(f"expected a loop range such as '0-2' or a bound such as 'labeled<100' {self.after()}")
        low = self._int("a whole loop number")
        if self.tok.kind != "MINUS":
            return str(low)
        self.advance()
        high_tok = self.tok
        high = self._int("the last loop of the range")
        if high < low:
            self.fail(f"the loop range {low}-{high} is empty; write the lower loop first", high_tok)
        return f"{low}-{high}"

    def pipeline(self) -> Strategy:
        left = self.sum()
        if self.tok.kind != "SHIFT":
            if isinstance(left, _Top):
                self.fail(f"expected '>>' and a second strategy {self.after()} (top(A, m) >> B is a two-stage spec)")
            return left
        self.advance()
        right_tok = self.tok
        right = self.pipeline()
        if isinstance(right, _Top):  # pipeline() never returns one, but be explicit
            self.fail("top(...) must be followed by '>>'", right_tok)
        from alloop.strategies.compose import TwoStage

        if isinstance(left, _Top):
            return TwoStage(first=left.first, then=right, m=left.m)
        return TwoStage(first=left, then=right)

    def sum(self) -> Any:
        start = self.tok
        terms: list[tuple[float, bool, Any, Token]] = []  # (sign * weight, weighted?, part, start)
        sign = 1.0
        if self.tok.kind == "MINUS":
            self.advance()
            sign = -1.0
        while True:
            term_tok = self.tok
            weight, weighted, part = self.term()
            terms.append((sign * weight, weighted or sign < 0, part, term_tok))
            if self.tok.kind not in ("PLUS", "MINUS"):
                break
            sign = 1.0 if self.advance().kind == "PLUS" else -1.0
        if len(terms) == 1 and not terms[0][1]:
            return terms[0][2]
        for _, _, part, _ in terms:
            if isinstance(part, _Top):
                raise spec_error(
                    self.spec,
                    part.pos,
                    "Invalid strategy spec: top(...) cannot be weighted or added; write 'top(A, m) >> B'.",
                )
        del start
        from alloop.strategies.compose import WeightedSum

        weights = tuple(w for w, _, _, _ in terms)
        return WeightedSum(
            parts=tuple(p for _, _, p, _ in terms), weights=None if all(w == 1.0 for w in weights) else weights
        )

    def term(self) -> tuple[float, bool, Any]:
        if self.tok.kind == "COUNT":
            self.fail(f"{self.tok.text!r} is a prefilter size; use it inside top(strategy, {self.tok.text})")
        if self.tok.kind == "NUMBER":
            number = self.advance()
            if self.tok.kind != "STAR":
                self.fail(f"expected '*' and a strategy after the weight {number.text} (e.g. '{number.text}*margin')")
            self.advance()
            return float(number.text), True, self.product()
        return 1.0, False, self.product()

    def product(self) -> Any:
        parts = [self.atom()]
        while self.tok.kind == "STAR":
            self.advance()
            if self.tok.kind == "NUMBER":
                self.fail("a weight goes before its strategy, e.g. '0.7*margin'")
            parts.append(self.atom())
        if len(parts) == 1:
            return parts[0]
        for part in parts:
            if isinstance(part, _Top):
                raise spec_error(
                    self.spec, part.pos, "Invalid strategy spec: top(...) cannot be multiplied; write 'top(A, m) >> B'."
                )
        from alloop.strategies.compose import Product

        return Product(parts=tuple(parts))

    def atom(self) -> Any:
        tok = self.tok
        if tok.kind == "LPAREN":
            self.advance()
            inner = self.schedule()
            if self.tok.kind != "RPAREN":
                self.fail(f"expected ')' to close the '(' at column {tok.pos + 1} {self.after()}")
            self.advance()
            return inner
        if tok.kind == "NAME" and tok.text == "top" and self.peek().kind == "LPAREN":
            return self.top()
        if tok.kind != "NAME":
            what = "a strategy name"
            if tok.kind == "END":
                self.fail(f"expected {what} {self.after()}")
            self.fail(f"expected {what} {self.after()}, found {tok.text!r}")
        self.advance()
        args = self.advance() if self.tok.kind == "ARGS" else None
        return self.build(tok, args)

    def top(self) -> _Top:
        top_tok = self.advance()
        self.advance()  # '('
        first = self.pipeline()
        self.expect("COMMA", "',' and a prefilter size such as 10k or 500")
        size = self.tok
        if size.kind == "COUNT":
            m: Any = size.text
        elif size.kind == "NUMBER" and size.text.isdigit() and int(size.text) >= 1:
            m = int(size.text)
        else:
            self.fail(f"expected a prefilter size such as 10k (10 × k) or 500 (absolute) {self.after()}")
        self.advance()
        self.expect("RPAREN", "')' to close top(...)")
        return _Top(first, m, top_tok.pos)

    # -- names and parameters
    def build(self, name_tok: Token, args: Token | None) -> Strategy:
        from alloop.strategies._registry import all_strategies, unknown_strategy_message

        registry = all_strategies()
        name = name_tok.text
        cls = registry.get(name)
        if cls is None:
            raise spec_error(self.spec, name_tok.pos, unknown_strategy_message(name, registry))
        kwargs, where = ({}, {}) if args is None else self.kwargs(name, args)
        allowed = cls._param_names()
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            raise spec_error(
                self.spec,
                where[unknown[0]],
                f"Strategy {name!r} has no parameter {unknown[0]!r}; its parameters are: "
                + (", ".join(allowed) if allowed else "(none)")
                + ".",
            )
        return cls(**kwargs)

    def kwargs(self, name: str, args: Token) -> tuple[dict[str, Any], dict[str, int]]:
        """The literal keyword arguments in ``args``, and the column of each keyword."""
        text = f"f{args.text}"
        where = f"Strategy spec {self.spec!r}"
        try:
            call = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            col = args.pos + max(0, (exc.offset or 1) - 2)
            raise spec_error(self.spec, col, f"{where} is not valid: {exc.msg}.") from None
        if not isinstance(call, ast.Call) or call.args or any(kw.arg is None for kw in call.keywords):
            raise spec_error(self.spec, args.pos, f"{where}: give parameters by name, e.g. '{name}(key=value)'.")
        out: dict[str, Any] = {}
        cols: dict[str, int] = {}
        for kw in call.keywords:
            cols[str(kw.arg)] = args.pos + kw.col_offset - 1
            try:
                out[str(kw.arg)] = ast.literal_eval(kw.value)
            except ValueError:
                raise spec_error(
                    self.spec,
                    args.pos + kw.value.col_offset - 1,
                    f"{where}: the value of {kw.arg!r} must be a literal (number, string, tuple); "
                    "write a strategy given as a parameter as a quoted spec, e.g. inner='margin'.",
                ) from None
        return out, cols


def parse_strategy(spec: str) -> Strategy:
    """Build the strategy (simple or composite) that ``spec`` describes; ConfigError with a caret otherwise."""
    return _Parser(spec).parse()
