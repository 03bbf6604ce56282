"""The spec's small, safe expression language: validity rules and aggregation predicates.

Validity rules such as ``age < 18 -> education in ['Preschool', 'Elementary', 'High School']``
and predicates of cross-table aggregations such as ``employment == 'Employed' and age >= 18``
come from spec files, that is from strangers. This module parses them with a hand-written
tokenizer and a precedence-climbing (Pratt) parser into an immutable tree of nodes, and
evaluates that tree over a pandas DataFrame column by column with numpy.

Nothing here hands text to Python: no ``eval``/``exec``, no ``pandas.eval`` or
``DataFrame.query``, no ``ast``/``compile``. The only things an expression can reach are the
columns of the frame it is evaluated on and six whitelisted functions; attribute access,
indexing, assignment, lambdas, comprehensions and statements are not in the grammar at all,
so there is no sandbox to escape.

Why no dependency:

- ``pandas.eval``/``DataFrame.query`` accept Python syntax (attribute access, ``@`` locals)
  and have been used to run code, so they cannot take untrusted text.
- ``ast`` plus a node whitelist would tie safety to a review of every Python node type, in
  every Python version, and still parse Python's grammar rather than ours (``->``, ``null``,
  backtick column names), with Python's error messages.
- Safe-evaluation packages (simpleeval, asteval) evaluate one row at a time over Python
  objects, where we need whole columns at once, and their safety rests on a sandbox.
  Parser generators (lark, pyparsing) would add an install-time dependency for a grammar of
  ten rules that a few hundred lines parse by hand, with errors that name the offending token
  and its position.

Grammar, from lowest to highest precedence::

    expression := or_expr ['->' expression]                   (right-associative)
    or_expr    := and_expr {'or' and_expr}
    and_expr   := not_expr {'and' not_expr}
    not_expr   := 'not' not_expr | comparison
    comparison := sum [compare_op sum | ['not'] 'in' list]     (comparisons do not chain)
    compare_op := '==' | '!=' | '<' | '<=' | '>' | '>='
    sum        := product {('+' | '-') product}
    product    := unary {('*' | '/' | '%') unary}
    unary      := '-' unary | atom
    atom       := number | string | 'true' | 'false' | 'null' | name | `any column name`
                | function '(' expression {',' expression} ')' | '(' expression ')'
    list       := '[' [literal {',' literal} [',']] ']'
    function   := 'abs' | 'min' | 'max' | 'isnull' | 'notnull' | 'round'

Numbers are integers or decimals (``3``, ``2.5``, ``1e-3``); strings use single or double
quotes with the escapes ``\\\\``, ``\\'``, ``\\"``, ``\\n``, ``\\t``, ``\\r`` and ``\\uXXXX``;
``True``/``False``/``None`` are accepted for ``true``/``false``/``null``. A name is
``[A-Za-z_][A-Za-z0-9_]*``; any other column name goes in backticks (`` `product category` ``,
with ``\\``` and ``\\\\`` as escapes). Error positions are 0-based character offsets.

Semantics (vectorised over the rows of a DataFrame):

- A comparison or ``in`` test involving a missing value (NaN, None, NaT, pd.NA) is false,
  including ``!=`` and ``not in``; use ``isnull(x)``/``notnull(x)`` to test for missing values.
  Comparing with ``null`` is therefore always false and is rejected when parsing.
- ``A -> B`` means ``(not A) or B``. In ``and``, ``or``, ``not`` and ``->`` a missing boolean
  counts as false.
- Numbers compare as numbers (``1 == 1.0``; booleans are 0 and 1, as in numpy); a string never
  equals a number (``'1' != 1``). ``<``, ``<=``, ``>``, ``>=`` between values of different
  kinds (a string and a number) raise :class:`ExpressionError`.
- A datetime column compares with an ISO date string (``signup >= '2024-01-31'``). Timezone
  aware columns are compared in UTC, and a literal without an offset is read as UTC.
- Arithmetic follows numpy: ``/`` is true division, division by zero gives ``inf`` or ``nan``
  (``%`` by zero gives ``nan``), and booleans count as 0 and 1. A missing value in gives a
  missing value out.
- ``min``/``max`` compare row by row (at least two arguments) and propagate missing values;
  ``round(x)`` and ``round(x, digits)`` round half to even, like Python and numpy.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import ExpressionError

__all__ = [
    'FUNCTIONS',
    'MAX_EXPRESSION_LENGTH',
    'MAX_NESTING_DEPTH',
    'BinaryOp',
    'BoolOp',
    'Call',
    'Column',
    'Compare',
    'Expression',
    'Implies',
    'Literal',
    'LiteralValue',
    'Membership',
    'Node',
    'UnaryOp',
    'evaluate_record',
    'parse_expression',
]

MAX_EXPRESSION_LENGTH = 2000
"""The longest expression text accepted, in characters."""

MAX_NESTING_DEPTH = 100
"""The deepest nesting accepted: parentheses, prefix operators and operator chains."""

FUNCTIONS = ('abs', 'isnull', 'max', 'min', 'notnull', 'round')
"""The only functions an expression may call."""

LiteralValue = bool | int | float | str | None

_PREC_IMPLIES = 10
_PREC_OR = 20
_PREC_AND = 30
_PREC_NOT = 40
_PREC_COMPARE = 50
_PREC_SUM = 60
_PREC_PRODUCT = 70
_PREC_UNARY = 80
_PREC_ATOM = 90

_COMPARISON_OPERATORS = ('==', '!=', '<', '<=', '>', '>=')
_ARITHMETIC_OPERATORS = ('+', '-', '*', '/', '%')
_INFIX_PRECEDENCE = {
    '->': _PREC_IMPLIES,
    'or': _PREC_OR,
    'and': _PREC_AND,
    'in': _PREC_COMPARE,
    'not in': _PREC_COMPARE,
    **dict.fromkeys(_COMPARISON_OPERATORS, _PREC_COMPARE),
    '+': _PREC_SUM,
    '-': _PREC_SUM,
    '*': _PREC_PRODUCT,
    '/': _PREC_PRODUCT,
    '%': _PREC_PRODUCT,
}

_CONSTANTS: dict[str, LiteralValue] = {
    'true': True,
    'True': True,
    'false': False,
    'False': False,
    'null': None,
    'None': None,
}
_KEYWORDS = frozenset({'and', 'or', 'not', 'in', *_CONSTANTS})
# Longest first, so that '<=' is read before '<'.
_PUNCTUATION = (
    '->', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '(', ')', '[', ']', ',',
)
_WHITESPACE = frozenset(' \t\r\n')
_DIGITS = frozenset('0123456789')
_HEX_DIGITS = frozenset('0123456789abcdefABCDEF')
_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_NUMBER_RE = re.compile(r'(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?')
_ESCAPES = {'\\': '\\', "'": "'", '"': '"', 'n': '\n', 't': '\t', 'r': '\r'}
_MAX_INT = 2**63 - 1
_MAX_QUOTED_TEXT = 200
_MAX_LISTED_COLUMNS = 20
_ISO_DATETIME_RE = re.compile(
    r'\d{4}-\d{2}-\d{2}'
    r'(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?'
    r'(?:Z|[+-]\d{2}(?::?\d{2})?)?'
)


def _quote_text(text: str) -> str:
    """Quote an expression for an error message, shortening very long ones."""
    if len(text) <= _MAX_QUOTED_TEXT:
        return repr(text)

    return f'{text[:_MAX_QUOTED_TEXT]!r}... ({len(text)} characters)'


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base class of the nodes of a parsed expression; every node is immutable."""

    def __post_init__(self) -> None:
        """Record the depth of the subtree, which the parser bounds."""
        depth = 1 + max((child.depth for child in self.children()), default=0)
        object.__setattr__(self, '_depth', depth)

    @property
    def depth(self) -> int:
        """int: The number of nodes on the longest path from this node down to a leaf."""
        return self._depth  # type: ignore[attr-defined]

    def children(self) -> tuple[Node, ...]:
        """Return the direct sub-expressions of this node.

        Returns:
            tuple[Node, ...]:
                The children, left to right; empty for literals and columns.
        """
        return ()

    def walk(self) -> Iterator[Node]:
        """Yield this node and every node below it, depth first, left to right.

        Yields:
            Node:
                Each node of the subtree.
        """
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    def __str__(self) -> str:
        """Return the canonical text of this node, which parses back to an equal node."""
        return _format(self)


@dataclass(frozen=True, eq=False)
class Literal(Node):
    """A constant: a number, a string, a boolean or null.

    Two literals are equal only if their values have the same type, so ``1``, ``1.0`` and
    ``true`` are three different literals (they still compare equal when evaluated).

    Args:
        value (bool | int | float | str | None):
            The constant.
    """

    value: LiteralValue

    def __eq__(self, other: object) -> bool:
        """Compare value and type of value."""
        if not isinstance(other, Literal):
            return NotImplemented

        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        """Hash value and type of value, consistently with ``__eq__``."""
        return hash((type(self.value).__name__, self.value))


@dataclass(frozen=True)
class Column(Node):
    """A reference to a column of the table the expression is evaluated on.

    Args:
        name (str):
            The column name.
    """

    name: str


@dataclass(frozen=True)
class UnaryOp(Node):
    """A prefix operator: numeric negation ``-x`` or logical ``not x``.

    Args:
        op (str):
            ``'-'`` or ``'not'``.
        operand (Node):
            The operand.
    """

    op: str
    operand: Node

    def __post_init__(self) -> None:
        """Check the operator."""
        if self.op not in ('-', 'not'):
            raise ValueError(f"UnaryOp.op must be '-' or 'not', got {self.op!r}.")

        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the operand."""
        return (self.operand,)


@dataclass(frozen=True)
class BinaryOp(Node):
    """An arithmetic operation: ``+``, ``-``, ``*``, ``/`` or ``%``.

    Args:
        op (str):
            The operator.
        left (Node):
            The left operand.
        right (Node):
            The right operand.
    """

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        """Check the operator."""
        if self.op not in _ARITHMETIC_OPERATORS:
            raise ValueError(
                f'BinaryOp.op must be one of {_ARITHMETIC_OPERATORS}, got {self.op!r}.'
            )

        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the two operands."""
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Node):
    """A comparison: ``==``, ``!=``, ``<``, ``<=``, ``>`` or ``>=``.

    Args:
        op (str):
            The operator.
        left (Node):
            The left operand.
        right (Node):
            The right operand.
    """

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        """Check the operator."""
        if self.op not in _COMPARISON_OPERATORS:
            raise ValueError(
                f'Compare.op must be one of {_COMPARISON_OPERATORS}, got {self.op!r}.'
            )

        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the two operands."""
        return (self.left, self.right)


@dataclass(frozen=True)
class Membership(Node):
    """A membership test against a list of literals: ``x in [...]`` or ``x not in [...]``.

    Args:
        operand (Node):
            The value tested.
        values (tuple[Literal, ...]):
            The listed literals.
        negated (bool):
            True for ``not in``. Defaults to False.
    """

    operand: Node
    values: tuple[Literal, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        """Freeze the list of values and check that it holds literals only."""
        object.__setattr__(self, 'values', tuple(self.values))
        if not all(isinstance(value, Literal) for value in self.values):
            raise ValueError('Membership.values must hold Literal nodes only.')

        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the operand (the listed literals are data, not sub-expressions)."""
        return (self.operand,)


@dataclass(frozen=True)
class BoolOp(Node):
    """A conjunction or disjunction of two or more conditions.

    Chains are kept flat: ``a and b and c`` is one node with three operands, and since
    ``and``/``or`` are associative, ``(a and b) and c`` is the same node.

    Args:
        op (str):
            ``'and'`` or ``'or'``.
        operands (tuple[Node, ...]):
            The conditions, at least two.
    """

    op: str
    operands: tuple[Node, ...]

    def __post_init__(self) -> None:
        """Check the operator, freeze the operands and flatten nested nodes of the same op."""
        if self.op not in ('and', 'or'):
            raise ValueError(f"BoolOp.op must be 'and' or 'or', got {self.op!r}.")

        flat: list[Node] = []
        for operand in self.operands:
            if isinstance(operand, BoolOp) and operand.op == self.op:
                flat.extend(operand.operands)
            else:
                flat.append(operand)

        if len(flat) < 2:
            raise ValueError('BoolOp needs at least two operands.')

        object.__setattr__(self, 'operands', tuple(flat))
        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the operands."""
        return self.operands


@dataclass(frozen=True)
class Implies(Node):
    """An implication ``antecedent -> consequent``, true unless the antecedent holds and the
    consequent does not.

    Args:
        antecedent (Node):
            The condition on the left.
        consequent (Node):
            The condition on the right.
    """

    antecedent: Node
    consequent: Node

    def children(self) -> tuple[Node, ...]:
        """Return the antecedent and the consequent."""
        return (self.antecedent, self.consequent)


@dataclass(frozen=True)
class Call(Node):
    """A call of one of the whitelisted functions (see ``FUNCTIONS``).

    Args:
        name (str):
            The function name.
        args (tuple[Node, ...]):
            The arguments.
    """

    name: str
    args: tuple[Node, ...]

    def __post_init__(self) -> None:
        """Check the function name and freeze the arguments."""
        if self.name not in FUNCTIONS:
            raise ValueError(f'Call.name must be one of {FUNCTIONS}, got {self.name!r}.')

        object.__setattr__(self, 'args', tuple(self.args))
        super().__post_init__()

    def children(self) -> tuple[Node, ...]:
        """Return the arguments."""
        return self.args


def _static_type(node: Node) -> str:
    """Return what a node yields as far as the syntax tells: bool, number, string, null or any."""
    if isinstance(node, Literal):
        value = node.value
        if value is None:
            return 'null'
        if isinstance(value, bool):
            return 'bool'
        if isinstance(value, str):
            return 'string'
        return 'number'

    if isinstance(node, (Compare, Membership, BoolOp, Implies)):
        return 'bool'
    if isinstance(node, UnaryOp):
        return 'bool' if node.op == 'not' else 'number'
    if isinstance(node, BinaryOp):
        return 'number'
    if isinstance(node, Call):
        return {'isnull': 'bool', 'notnull': 'bool', 'abs': 'number', 'round': 'number'}.get(
            node.name, 'any'
        )

    return 'any'


# --------------------------------------------------------------------------------------------
# Canonical text
# --------------------------------------------------------------------------------------------


def _precedence(node: Node) -> int:
    if isinstance(node, Implies):
        return _PREC_IMPLIES
    if isinstance(node, BoolOp):
        return _PREC_OR if node.op == 'or' else _PREC_AND
    if isinstance(node, UnaryOp):
        return _PREC_NOT if node.op == 'not' else _PREC_UNARY
    if isinstance(node, (Compare, Membership)):
        return _PREC_COMPARE
    if isinstance(node, BinaryOp):
        return _INFIX_PRECEDENCE[node.op]
    if isinstance(node, Literal) and _is_negative_number(node.value):
        return _PREC_UNARY

    return _PREC_ATOM


def _is_negative_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.copysign(1, value) < 0
    )


def _format_string(value: str) -> str:
    parts = ["'"]
    for char in value:
        if char == '\\':
            parts.append('\\\\')
        elif char == "'":
            parts.append("\\'")
        elif char == '\n':
            parts.append('\\n')
        elif char == '\t':
            parts.append('\\t')
        elif char == '\r':
            parts.append('\\r')
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            parts.append(f'\\u{ord(char):04x}')
        else:
            parts.append(char)

    parts.append("'")
    return ''.join(parts)


def _format_literal(value: LiteralValue) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format_column(name: str) -> str:
    if _NAME_RE.fullmatch(name) and name not in _KEYWORDS:
        return name

    escaped = name.replace('\\', '\\\\').replace('`', '\\`')
    return f'`{escaped}`'


def _format(node: Node) -> str:
    """Return the canonical text of a node, with only the parentheses it needs."""

    def sub(child: Node, parenthesize: bool) -> str:
        text = _format(child)
        return f'({text})' if parenthesize else text

    if isinstance(node, Literal):
        return _format_literal(node.value)
    if isinstance(node, Column):
        return _format_column(node.name)
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_format(arg) for arg in node.args)})"
    if isinstance(node, UnaryOp):
        precedence = _precedence(node)
        operand = sub(node.operand, _precedence(node.operand) < precedence)
        return f'not {operand}' if node.op == 'not' else f'-{operand}'
    if isinstance(node, BinaryOp):
        precedence = _precedence(node)
        left = sub(node.left, _precedence(node.left) < precedence)
        right = sub(node.right, _precedence(node.right) <= precedence)
        return f'{left} {node.op} {right}'
    if isinstance(node, Compare):
        left = sub(node.left, _precedence(node.left) <= _PREC_COMPARE)
        right = sub(node.right, _precedence(node.right) <= _PREC_COMPARE)
        return f'{left} {node.op} {right}'
    if isinstance(node, Membership):
        operand = sub(node.operand, _precedence(node.operand) <= _PREC_COMPARE)
        values = ', '.join(_format_literal(literal.value) for literal in node.values)
        operator = 'not in' if node.negated else 'in'
        return f'{operand} {operator} [{values}]'
    if isinstance(node, BoolOp):
        precedence = _precedence(node)
        operands = (sub(op, _precedence(op) <= precedence) for op in node.operands)
        return f' {node.op} '.join(operands)
    if isinstance(node, Implies):
        antecedent = sub(node.antecedent, _precedence(node.antecedent) <= _PREC_IMPLIES)
        consequent = sub(node.consequent, _precedence(node.consequent) < _PREC_IMPLIES)
        return f'{antecedent} -> {consequent}'

    raise TypeError(f'Cannot format {type(node).__name__} nodes.')


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One token. ``kind`` is number, string, name, keyword, punct, eof or error."""

    kind: str
    text: str
    position: int
    value: Any = None


def _hint_for(text: str, position: int) -> str:
    char = text[position]
    following = text[position + 1 : position + 2]
    if char == '=' and following == '>':
        return "; use '->' for an implication"
    if char == '=':
        return "; use '==' to compare"
    if char == '&':
        return "; use 'and'"
    if char == '|':
        return "; use 'or'"
    if char == '!':
        return "; use 'not' (or '!=' to compare)"
    return ''


def _read_number(text: str, start: int, quoted: str) -> tuple[_Token, int]:
    match = _NUMBER_RE.match(text, start)
    source = match.group() if match else text[start]
    end = start + len(source)
    if any(char in source for char in '.eE'):
        value: int | float = float(source)
        valid = math.isfinite(value)
    else:
        valid = len(source.lstrip('0')) <= 19 and int(source) <= _MAX_INT
        value = int(source) if valid else 0

    if not valid:
        message = f'Number {source!r} at position {start} is out of range in expression {quoted}'
        return _Token('error', source, start, message), end

    return _Token('number', source, start, value), end


def _read_string(text: str, start: int, quoted: str) -> tuple[_Token, int]:
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return _Token('string', text[start : position + 1], start, ''.join(chars)), position + 1

        if char != '\\':
            chars.append(char)
            position += 1
            continue

        escape = text[position + 1 : position + 2]
        if escape in _ESCAPES:
            chars.append(_ESCAPES[escape])
            position += 2
            continue

        digits = text[position + 2 : position + 6]
        if escape == 'u' and len(digits) == 4 and all(c in _HEX_DIGITS for c in digits):
            chars.append(chr(int(digits, 16)))
            position += 6
            continue

        sequence = text[position : position + 2]
        message = (
            f'Unknown escape {sequence!r} at position {position} in expression {quoted}; '
            "strings allow \\\\, \\', \\\", \\n, \\t, \\r and \\uXXXX"
        )
        return _Token('error', sequence, position, message), len(text)

    message = f'Unterminated string starting at position {start} in expression {quoted}'
    return _Token('error', quote, start, message), len(text)


def _read_quoted_name(text: str, start: int, quoted: str) -> tuple[_Token, int]:
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == '`':
            name = ''.join(chars)
            if not name:
                message = (
                    f'Empty column name in backticks at position {start} in expression {quoted}'
                )
                return _Token('error', '``', start, message), position + 1

            return _Token('name', text[start : position + 1], start, name), position + 1

        following = text[position + 1 : position + 2]
        if char == '\\' and following in ('`', '\\'):
            chars.append(following)
            position += 2
        else:
            chars.append(char)
            position += 1

    message = f'Unterminated column name in backticks at position {start} in expression {quoted}'
    return _Token('error', '`', start, message), len(text)


def _tokenize(text: str) -> list[_Token]:
    """Split an expression into tokens.

    A character that cannot start a token becomes an ``error`` token carrying the message and
    ends the list; the parser raises it when it gets there, so the error reported is always the
    leftmost one.
    """
    quoted = _quote_text(text)
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in _WHITESPACE:
            position += 1
            continue

        following = text[position + 1 : position + 2]
        if char in _DIGITS or (char == '.' and following in _DIGITS):
            token, position = _read_number(text, position, quoted)
        elif char in ('"', "'"):
            token, position = _read_string(text, position, quoted)
        elif char == '`':
            token, position = _read_quoted_name(text, position, quoted)
        elif match := _NAME_RE.match(text, position):
            word = match.group()
            kind = 'keyword' if word in _KEYWORDS else 'name'
            token = _Token(kind, word, position, word)
            position = match.end()
        else:
            punctuation = next((p for p in _PUNCTUATION if text.startswith(p, position)), None)
            if punctuation is None:
                message = (
                    f'Unexpected {char!r} at position {position} in expression {quoted}'
                    f'{_hint_for(text, position)}'
                )
                token = _Token('error', char, position, message)
            else:
                token = _Token('punct', punctuation, position)
                position += len(punctuation)

        tokens.append(token)
        if token.kind == 'error':
            return tokens

    tokens.append(_Token('eof', '', len(text)))
    return tokens


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class _Parser:
    """Precedence-climbing parser over the token list of one expression."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._quoted = _quote_text(text)
        self._tokens = _tokenize(text)
        self._index = 0
        self._nesting = 0

    # -- token access -------------------------------------------------------------------------

    def _peek(self, offset: int = 0) -> _Token:
        token = self._tokens[min(self._index + offset, len(self._tokens) - 1)]
        if token.kind == 'error':
            raise ExpressionError(token.value)

        return token

    def _advance(self) -> _Token:
        token = self._peek()
        self._index += 1
        return token

    def _error(self, message: str, position: int, detail: str = '') -> ExpressionError:
        return ExpressionError(
            f'{message} at position {position} in expression {self._quoted}{detail}'
        )

    def _unexpected(self, token: _Token, expected: str) -> ExpressionError:
        found = 'end of expression' if token.kind == 'eof' else repr(token.text)
        return self._error(f'Unexpected {found}', token.position, f'; expected {expected}')

    def _expect(self, text: str, expected: str) -> _Token:
        token = self._peek()
        if token.kind != 'punct' or token.text != text:
            raise self._unexpected(token, expected)

        return self._advance()

    # -- checks -------------------------------------------------------------------------------

    def _checked(self, node: Node, token: _Token) -> Node:
        if node.depth > MAX_NESTING_DEPTH:
            raise self._error(
                f'Expression nests too deeply (more than {MAX_NESTING_DEPTH} levels)',
                token.position,
            )

        return node

    def _require_condition(self, node: Node, token: _Token) -> None:
        if _static_type(node) in ('number', 'string', 'null'):
            raise self._error(
                f'The operand {str(node)!r} of {token.text!r} is not a condition (true or false)',
                token.position,
            )

    def _require_number(self, node: Node, token: _Token, what: str) -> None:
        if _static_type(node) in ('string', 'null'):
            raise self._error(f'{what} needs numbers, got {str(node)!r},', token.position)

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> Node:
        node = self._parse_expression(0)
        token = self._peek()
        if token.kind != 'eof':
            raise self._unexpected(token, 'an operator or the end of the expression')

        return node

    def _infix_operator(self, token: _Token) -> str | None:
        if token.kind == 'punct' and token.text in _INFIX_PRECEDENCE:
            return token.text
        if token.kind == 'keyword' and token.text in ('and', 'or', 'in'):
            return token.text
        if token.kind == 'keyword' and token.text == 'not':
            following = self._peek(1)
            if following.kind == 'keyword' and following.text == 'in':
                return 'not in'

            raise self._unexpected(following, "'in' after 'not'")

        return None

    def _parse_expression(self, min_precedence: int) -> Node:
        left = self._parse_prefix(min_precedence)
        while True:
            token = self._peek()
            operator = self._infix_operator(token)
            if operator is None or _INFIX_PRECEDENCE[operator] < min_precedence:
                return left

            precedence = _INFIX_PRECEDENCE[operator]
            self._advance()
            if operator == '->':
                right = self._parse_expression(_PREC_IMPLIES)  # right-associative
                self._require_condition(left, token)
                self._require_condition(right, token)
                left = Implies(left, right)
            elif operator in ('and', 'or'):
                right = self._parse_expression(precedence + 1)
                self._require_condition(left, token)
                self._require_condition(right, token)
                left = BoolOp(operator, (left, right))
            elif operator in ('in', 'not in'):
                if operator == 'not in':
                    self._advance()

                left = Membership(left, self._parse_list(), negated=operator == 'not in')
                self._reject_chained_comparison()
            elif operator in _COMPARISON_OPERATORS:
                right = self._parse_expression(_PREC_COMPARE + 1)
                if _static_type(left) == 'null' or _static_type(right) == 'null':
                    raise self._error(
                        'Comparison with null is always false', token.position,
                        '; use isnull(x) or notnull(x) to test for missing values',
                    )

                left = Compare(operator, left, right)
                self._reject_chained_comparison()
            else:
                right = self._parse_expression(precedence + 1)
                self._require_number(left, token, f'Operator {operator!r}')
                self._require_number(right, token, f'Operator {operator!r}')
                left = BinaryOp(operator, left, right)

            left = self._checked(left, token)

    def _reject_chained_comparison(self) -> None:
        token = self._peek()
        operator = self._infix_operator(token)
        if operator is not None and _INFIX_PRECEDENCE[operator] == _PREC_COMPARE:
            raise self._error(
                f'Chained comparison {operator!r}', token.position,
                "; comparisons do not chain, combine them with 'and' (a < b and b < c)",
            )

    def _parse_prefix(self, min_precedence: int) -> Node:
        token = self._peek()
        self._nesting += 1
        if self._nesting > MAX_NESTING_DEPTH:
            raise self._error(
                f'Expression nests too deeply (more than {MAX_NESTING_DEPTH} levels)',
                token.position,
            )

        try:
            return self._checked(self._parse_prefix_inner(token, min_precedence), token)
        finally:
            self._nesting -= 1

    def _parse_prefix_inner(self, token: _Token, min_precedence: int) -> Node:
        if token.kind == 'number':
            self._advance()
            return Literal(token.value)
        if token.kind == 'string':
            self._advance()
            return Literal(token.value)
        if token.kind == 'keyword' and token.text in _CONSTANTS:
            self._advance()
            return Literal(_CONSTANTS[token.text])
        if token.kind == 'keyword' and token.text == 'not':
            if min_precedence > _PREC_NOT:
                raise self._unexpected(token, "a value; put 'not ...' in parentheses")

            self._advance()
            operand = self._parse_expression(_PREC_NOT)
            self._require_condition(operand, token)
            return UnaryOp('not', operand)
        if token.kind == 'punct' and token.text == '-':
            self._advance()
            operand = self._parse_expression(_PREC_UNARY)
            self._require_number(operand, token, "Operator '-'")
            return UnaryOp('-', operand)
        if token.kind == 'punct' and token.text == '(':
            self._advance()
            inner = self._parse_expression(0)
            self._expect(')', "')'")
            return inner
        if token.kind == 'name':
            self._advance()
            following = self._peek()
            is_bare_name = not token.text.startswith('`')
            if is_bare_name and following.kind == 'punct' and following.text == '(':
                return self._parse_call(token)

            return Column(token.value)

        raise self._unexpected(token, 'a value')

    def _parse_call(self, name_token: _Token) -> Node:
        name = name_token.value
        if name not in FUNCTIONS:
            raise self._error(
                f'Unknown function {name!r}', name_token.position,
                f"; allowed functions: {', '.join(FUNCTIONS)}",
            )

        self._expect('(', "'('")
        args: list[Node] = []
        if not (self._peek().kind == 'punct' and self._peek().text == ')'):
            args.append(self._parse_expression(0))
            while self._peek().kind == 'punct' and self._peek().text == ',':
                self._advance()
                args.append(self._parse_expression(0))

        self._expect(')', "',' or ')'")
        self._check_arguments(name_token, args)
        return Call(name, tuple(args))

    def _check_arguments(self, name_token: _Token, args: list[Node]) -> None:
        name = name_token.value
        position = name_token.position
        if name in ('abs', 'isnull', 'notnull') and len(args) != 1:
            raise self._error(f'{name}() takes 1 argument ({len(args)} given)', position)
        if name == 'round' and len(args) not in (1, 2):
            raise self._error(f'round() takes 1 or 2 arguments ({len(args)} given)', position)
        if name in ('min', 'max') and len(args) < 2:
            raise self._error(
                f'{name}() takes at least 2 arguments ({len(args)} given)', position,
                '; it compares values row by row, it does not aggregate a column',
            )

        if name == 'round' and len(args) == 2 and not _is_integer_literal(args[1]):
            raise self._error(
                f'The number of digits of round() must be an integer, got {str(args[1])!r},',
                position,
            )

        if name not in ('isnull', 'notnull'):
            for arg in args:
                self._require_number(arg, name_token, f'{name}()')

    def _parse_list(self) -> tuple[Literal, ...]:
        self._expect('[', "'[' after 'in'")
        values: list[Literal] = []
        while not (self._peek().kind == 'punct' and self._peek().text == ']'):
            values.append(self._parse_list_item())
            token = self._peek()
            if token.kind == 'punct' and token.text == ',':
                self._advance()
            elif not (token.kind == 'punct' and token.text == ']'):
                raise self._unexpected(token, "',' or ']'")

        self._advance()
        return tuple(values)

    def _parse_list_item(self) -> Literal:
        token = self._advance()
        if token.kind in ('number', 'string'):
            return Literal(token.value)
        if token.kind == 'punct' and token.text == '-' and self._peek().kind == 'number':
            return Literal(-self._advance().value)
        if token.kind == 'keyword' and token.text in _CONSTANTS:
            value = _CONSTANTS[token.text]
            if value is None:
                raise self._error(
                    'null in a list never matches', token.position,
                    '; missing values are never in a list, test them with isnull(x)',
                )

            return Literal(value)

        raise self._unexpected(token, 'a literal (number, string, true or false) in the list')


def _is_integer_literal(node: Node) -> bool:
    if isinstance(node, UnaryOp) and node.op == '-':
        node = node.operand

    return (
        isinstance(node, Literal) and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    )


def _unknown_columns_message(unknown: list[str], known: Collection[Any], text: str) -> str:
    noun = 'column' if len(unknown) == 1 else 'columns'
    names = ', '.join(repr(name) for name in unknown)
    known_names = sorted(str(name) for name in known)
    listed = ', '.join(repr(name) for name in known_names[:_MAX_LISTED_COLUMNS]) or '(none)'
    if len(known_names) > _MAX_LISTED_COLUMNS:
        listed += f', ... ({len(known_names) - _MAX_LISTED_COLUMNS} more)'

    message = f'Unknown {noun} {names} in expression {_quote_text(text)}; known columns: {listed}'
    close = difflib.get_close_matches(str(unknown[0]), known_names, n=1)
    if close:
        message += f'. Did you mean {close[0]!r}?'

    return message


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

_KIND_NAMES = {
    'bool': 'booleans',
    'number': 'numbers',
    'string': 'strings',
    'datetime': 'dates/times',
    'timedelta': 'durations',
    'null': 'missing values',
    'mixed': 'values of mixed types',
}
_INFERRED_KINDS = {
    'string': 'string',
    'boolean': 'bool',
    'empty': 'null',
    'integer': 'number',
    'floating': 'number',
    'mixed-integer-float': 'number',
    'decimal': 'number',
    'datetime64': 'datetime',
    'datetime': 'datetime',
    'timedelta64': 'timedelta',
    'timedelta': 'timedelta',
}
_COMPARATORS: dict[str, Callable[..., Any]] = {
    '==': np.equal,
    '!=': np.not_equal,
    '<': np.less,
    '<=': np.less_equal,
    '>': np.greater,
    '>=': np.greater_equal,
}
_ARITHMETIC: dict[str, Callable[..., Any]] = {
    '+': np.add,
    '-': np.subtract,
    '*': np.multiply,
    '/': np.true_divide,
    '%': np.remainder,
}
_NUMERIC_KINDS = frozenset({'bool', 'number'})


def _kind(value: Any) -> str:
    """Return the kind of an evaluated value (an array or a scalar), one of ``_KIND_NAMES``."""
    if isinstance(value, np.ndarray):
        dtype_kind = value.dtype.kind
        if dtype_kind == 'b':
            return 'bool'
        if dtype_kind in 'iuf':
            return 'number'
        if dtype_kind == 'M':
            return 'datetime'
        if dtype_kind == 'm':
            return 'timedelta'
        if dtype_kind in 'US':
            return 'string'
        inferred = pd.api.types.infer_dtype(value, skipna=True)
        return _INFERRED_KINDS.get(inferred, 'mixed')

    if value is None:
        return 'null'
    if isinstance(value, (bool, np.bool_)):
        return 'bool'
    if isinstance(value, (int, float, np.integer, np.floating)):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return 'datetime'
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return 'timedelta'
    return 'mixed'


def _to_utc_naive(values: pd.Series) -> np.ndarray:
    return values.dt.tz_convert('UTC').dt.tz_localize(None).to_numpy()


def _column_array(series: pd.Series) -> np.ndarray:
    """Turn a column into a numpy array whose dtype tells its kind.

    Integers become int64 and other numbers float64 (nullable ones with NaN for missing),
    numpy booleans stay bool, nullable booleans become objects with None, timezone-aware
    datetimes become naive UTC datetime64, and object columns holding only numbers or only
    datetimes are converted to those.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype

    if isinstance(dtype, pd.DatetimeTZDtype):
        return _to_utc_naive(series)

    if pd.api.types.is_bool_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return series.to_numpy()

        return series.to_numpy(dtype=object, na_value=None)

    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        if isinstance(dtype, np.dtype) and (
            dtype.kind == 'i' or (dtype.kind == 'u' and dtype.itemsize < 8)
        ):
            return series.to_numpy(dtype=np.int64)

        return series.to_numpy(dtype=np.float64, na_value=np.nan)

    if isinstance(dtype, np.dtype) and dtype.kind in 'Mm':
        return series.to_numpy()

    values = series.to_numpy(dtype=object, na_value=None)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in ('integer', 'floating', 'mixed-integer-float', 'decimal'):
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors='coerce')
        return numbers.to_numpy(dtype=np.float64, na_value=np.nan)

    if inferred in ('datetime', 'datetime64', 'date'):
        try:
            converted = pd.Series(pd.to_datetime(values))
        except (TypeError, ValueError):
            return values

        if isinstance(converted.dtype, pd.DatetimeTZDtype):
            return _to_utc_naive(converted)

        return converted.to_numpy()

    return values


def _take(value: Any, mask: np.ndarray) -> Any:
    return value[mask] if isinstance(value, np.ndarray) else value


def _is_integer_value(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in 'iu'

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _objects_to_float(values: np.ndarray) -> np.ndarray:
    result = np.full(len(values), np.nan)
    present = ~pd.isna(values)
    result[present] = values[present].astype(np.float64)
    return result


class _Evaluator:
    """Evaluate the nodes of one expression over one frame."""

    def __init__(self, frame: pd.DataFrame, text: str) -> None:
        self._frame = frame
        self._text = text
        self._quoted = _quote_text(text)
        self._num_rows = len(frame)
        self._columns: dict[str, np.ndarray] = {}
        self._handlers: dict[type, Callable[[Any], Any]] = {
            Literal: self._literal,
            Column: self._column,
            UnaryOp: self._unary,
            BinaryOp: self._binary,
            Compare: self._compare,
            Membership: self._membership,
            BoolOp: self._bool_op,
            Implies: self._implies,
            Call: self._call,
        }

    def _error(self, message: str) -> ExpressionError:
        return ExpressionError(f'{message} in expression {self._quoted}')

    def evaluate(self, node: Node) -> Any:
        """Return an array of one value per row, or a scalar when no column is involved."""
        handler = self._handlers.get(type(node))
        if handler is None:
            raise TypeError(f'Cannot evaluate {type(node).__name__} nodes.')

        return handler(node)

    def materialize(self, value: Any) -> np.ndarray:
        """Broadcast a scalar to one value per row; arrays are returned as they are."""
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return value
        if isinstance(value, np.ndarray):
            value = value[()]
        if value is None or isinstance(value, str):
            return np.full(self._num_rows, value, dtype=object)

        return np.full(self._num_rows, value)

    def _missing(self, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            return np.asarray(pd.isna(value), dtype=bool)

        return np.full(self._num_rows, bool(pd.isna(value)))

    def _timestamp(self, value: str) -> np.datetime64:
        if not _ISO_DATETIME_RE.fullmatch(value.strip()):
            raise self._error(
                f'Cannot compare dates/times with {value!r}: write dates in ISO format, '
                "e.g. '2024-01-31' or '2024-01-31 08:30:00',"
            )

        try:
            timestamp = pd.Timestamp(value.strip())
        except ValueError as err:
            raise self._error(f'{value!r} is not a valid date/time') from err

        if timestamp.tzinfo is not None:
            timestamp = timestamp.tz_convert('UTC').tz_localize(None)

        return timestamp.to_datetime64()

    # -- leaves -------------------------------------------------------------------------------

    def _literal(self, node: Literal) -> Any:
        return node.value

    def _column(self, node: Column) -> np.ndarray:
        name = node.name
        if name in self._columns:
            return self._columns[name]

        if name not in self._frame.columns:
            raise ExpressionError(_unknown_columns_message([name], self._frame.columns, self._text))

        series = self._frame[name]
        if isinstance(series, pd.DataFrame):
            raise self._error(f'Column {name!r} appears more than once in the data')

        values = _column_array(series)
        self._columns[name] = values
        return values

    # -- conditions ---------------------------------------------------------------------------

    def _condition(self, node: Node, operator: str) -> np.ndarray:
        value = self.evaluate(node)
        kind = _kind(value)
        if isinstance(value, np.ndarray) and value.dtype == bool:
            return value
        if kind in ('bool', 'null'):
            if not isinstance(value, np.ndarray):
                return np.full(self._num_rows, value is not None and bool(value))

            result = np.zeros(self._num_rows, dtype=bool)
            present = ~self._missing(value)
            result[present] = value[present].astype(bool)
            return result

        raise self._error(
            f'The operand {str(node)!r} of {operator!r} must be a condition (true or false), '
            f'but it gives {_KIND_NAMES[kind]}'
        )

    def _bool_op(self, node: BoolOp) -> np.ndarray:
        conditions = [self._condition(operand, node.op) for operand in node.operands]
        reducer = np.logical_and if node.op == 'and' else np.logical_or
        return reducer.reduce(conditions)

    def _implies(self, node: Implies) -> np.ndarray:
        antecedent = self._condition(node.antecedent, '->')
        consequent = self._condition(node.consequent, '->')
        return ~antecedent | consequent

    # -- comparisons --------------------------------------------------------------------------

    def _compare(self, node: Compare) -> np.ndarray:
        left = self.evaluate(node.left)
        right = self.evaluate(node.right)
        left_kind, right_kind = _kind(left), _kind(right)
        if left_kind == 'datetime' and right_kind == 'string' and isinstance(right, str):
            right, right_kind = self._timestamp(right), 'datetime'
        if right_kind == 'datetime' and left_kind == 'string' and isinstance(left, str):
            left, left_kind = self._timestamp(left), 'datetime'

        result = np.zeros(self._num_rows, dtype=bool)
        if 'null' in (left_kind, right_kind):
            return result

        present = ~(self._missing(left) | self._missing(right))
        comparable = (
            'mixed' in (left_kind, right_kind)
            or left_kind == right_kind
            or {left_kind, right_kind} <= _NUMERIC_KINDS
        )
        if not comparable:
            if node.op == '==':
                return result
            if node.op == '!=':
                return present

            raise self._error(
                f'Cannot compare {_KIND_NAMES[left_kind]} ({str(node.left)!r}) with '
                f'{_KIND_NAMES[right_kind]} ({str(node.right)!r}) using {node.op!r}'
            )

        try:
            with np.errstate(all='ignore'):
                values = _COMPARATORS[node.op](_take(left, present), _take(right, present))
        except (TypeError, ValueError) as err:
            raise self._error(
                f'Cannot compare {str(node.left)!r} with {str(node.right)!r} using {node.op!r} '
                f'({err})'
            ) from err

        result[present] = np.asarray(values, dtype=bool)
        return result

    def _membership(self, node: Membership) -> np.ndarray:
        values = self.materialize(self.evaluate(node.operand))
        kind = _kind(values)
        listed = [literal.value for literal in node.values]
        if kind in _NUMERIC_KINDS:
            allowed: list[Any] = [
                value for value in listed if isinstance(value, (bool, int, float))
            ]
        elif kind == 'string':
            allowed = [value for value in listed if isinstance(value, str)]
        elif kind == 'datetime':
            allowed = [self._timestamp(value) for value in listed if isinstance(value, str)]
        elif kind == 'null':
            allowed = []
        else:
            allowed = listed

        result = np.zeros(self._num_rows, dtype=bool)
        present = ~self._missing(values)
        if kind in _NUMERIC_KINDS:
            found = np.isin(values[present], np.asarray(allowed, dtype=np.float64))
        elif allowed:
            found = pd.Series(values[present], dtype=values.dtype).isin(allowed).to_numpy()
        else:
            found = np.zeros(int(present.sum()), dtype=bool)

        result[present] = ~found if node.negated else found
        return result

    # -- arithmetic ---------------------------------------------------------------------------

    def _number(self, node: Node, what: str, allow_datetimes: bool = False) -> Any:
        value = self.evaluate(node)
        kind = _kind(value)
        is_array = isinstance(value, np.ndarray)
        if kind == 'bool':
            if not is_array:
                return int(value)

            return value.astype(np.int64) if value.dtype == bool else _objects_to_float(value)
        if kind == 'number':
            return _objects_to_float(value) if is_array and value.dtype == object else value
        if kind == 'null':
            return np.full(self._num_rows, np.nan) if is_array else np.nan
        if allow_datetimes and kind in ('datetime', 'timedelta'):
            return value

        raise self._error(f'{what} needs numbers, but {str(node)!r} gives {_KIND_NAMES[kind]}')

    def _arithmetic(self, operator: str, left: Any, right: Any, node: Node) -> Any:
        if operator == '%' and _is_integer_value(left) and _is_integer_value(right):
            if np.any(np.asarray(right) == 0):
                # numpy gives 0 for an integer modulo zero; keep "division by zero is nan".
                left = np.asarray(left, dtype=np.float64)
                right = np.asarray(right, dtype=np.float64)

        try:
            with np.errstate(all='ignore'):
                return _ARITHMETIC[operator](left, right)
        except (TypeError, ValueError, OverflowError) as err:
            raise self._error(f'Cannot compute {str(node)!r} ({err})') from err

    def _unary(self, node: UnaryOp) -> Any:
        if node.op == 'not':
            return ~self._condition(node.operand, 'not')

        operand = self._number(node.operand, "Operator '-'", allow_datetimes=True)
        try:
            return np.negative(operand)
        except TypeError as err:
            raise self._error(f'Cannot compute {str(node)!r} ({err})') from err

    def _binary(self, node: BinaryOp) -> Any:
        what = f'Operator {node.op!r}'
        allow = node.op in ('+', '-')
        left = self._number(node.left, what, allow_datetimes=allow)
        right = self._number(node.right, what, allow_datetimes=allow)
        return self._arithmetic(node.op, left, right, node)

    def _call(self, node: Call) -> Any:
        name = node.name
        if name in ('isnull', 'notnull'):
            missing = self._missing(self.evaluate(node.args[0]))
            return missing if name == 'isnull' else ~missing

        what = f'{name}()'
        if name in ('min', 'max'):
            args = [self._number(arg, what, allow_datetimes=True) for arg in node.args]
            reducer = np.minimum if name == 'min' else np.maximum
            result = args[0]
            try:
                for arg in args[1:]:
                    result = reducer(result, arg)
            except (TypeError, ValueError) as err:
                raise self._error(f'Cannot compute {str(node)!r} ({err})') from err

            return result

        value = self._number(node.args[0], what)
        if name == 'abs':
            return np.abs(value)

        digits = int(self.evaluate(node.args[1])) if len(node.args) == 2 else 0
        return np.round(value, digits)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Expression:
    """A parsed expression: an immutable tree plus the text it came from.

    Build one with :func:`parse_expression`. Two expressions are equal when their trees are,
    whatever their spacing or parentheses.

    Args:
        root (Node):
            The top node of the tree.
        text (str):
            The original text. Defaults to the canonical text of ``root``.

    Attributes:
        columns (frozenset[str]):
            The names of the columns the expression refers to.
    """

    root: Node
    text: str = field(default='', compare=False)
    columns: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        """Fill in the text if missing and collect the referenced columns."""
        if not self.text:
            object.__setattr__(self, 'text', str(self.root))

        names = frozenset(node.name for node in self.root.walk() if isinstance(node, Column))
        object.__setattr__(self, 'columns', names)

    @property
    def is_predicate(self) -> bool:
        """bool: Whether the expression is a condition (its top node gives true or false)."""
        return _static_type(self.root) == 'bool'

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """Evaluate the expression on every row of a DataFrame at once.

        Args:
            frame (pandas.DataFrame):
                The rows. It must have every column in ``columns``; other columns are ignored.

        Returns:
            numpy.ndarray:
                One value per row: booleans for a predicate, numbers (or the column's values)
                otherwise.

        Raises:
            ExpressionError:
                If a referenced column is missing from ``frame`` or values of incompatible
                types meet (for example a string column compared with ``<`` to a number).
            TypeError:
                If ``frame`` is not a DataFrame.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f'Expression.evaluate needs a pandas DataFrame, got {type(frame).__name__}.'
            )

        evaluator = _Evaluator(frame, self.text)
        result = evaluator.evaluate(self.root)
        if isinstance(self.root, Column):
            # Never hand out a view of the caller's frame.
            return np.array(result, copy=True)

        return evaluator.materialize(result)

    def __str__(self) -> str:
        """Return the canonical text, which parses back to an equal expression."""
        return str(self.root)

    def __repr__(self) -> str:
        """Return ``Expression('<text>')``."""
        return f'Expression({self.text!r})'


def parse_expression(text: str, columns: Collection[str] | None = None) -> Expression:
    """Parse the text of a validity rule, a predicate or an arithmetic expression.

    Args:
        text (str):
            The expression, for example ``"age < 18 -> education in ['Preschool']"``.
        columns (Collection[str] | None):
            The column names the expression may use. If given, a reference to any other
            column is an error. Defaults to None (any column name is accepted).

    Returns:
        Expression:
            The parsed expression.

    Raises:
        ExpressionError:
            If the text is not a string, is empty, longer than ``MAX_EXPRESSION_LENGTH``,
            nested deeper than ``MAX_NESTING_DEPTH``, does not follow the grammar, calls a
            function outside ``FUNCTIONS`` or names an unknown column. The message names the
            offending token and its 0-based character position.
    """
    if not isinstance(text, str):
        raise ExpressionError(f'An expression must be a string, got {type(text).__name__}.')
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f'Expression is too long ({len(text)} characters; the maximum is '
            f'{MAX_EXPRESSION_LENGTH}): {_quote_text(text)}'
        )
    if not text.strip():
        raise ExpressionError('Expression is empty.')

    root = _Parser(text).parse()
    expression = Expression(root, text)
    if columns is not None:
        known = set(columns)
        seen: dict[str, None] = {}
        for node in root.walk():
            if isinstance(node, Column) and node.name not in known:
                seen.setdefault(node.name)

        if seen:
            raise ExpressionError(_unknown_columns_message(list(seen), known, text))

    return expression


def evaluate_record(expression: Expression | str, record: Mapping[str, Any]) -> Any:
    """Evaluate an expression on a single record.

    Args:
        expression (Expression | str):
            A parsed expression, or its text.
        record (Mapping[str, Any]):
            The record, column name to value. Keys the expression does not use are ignored.

    Returns:
        bool | Any:
            A Python bool for a predicate, otherwise the value (a Python scalar when possible).

    Raises:
        ExpressionError:
            If the text does not parse, the record lacks a referenced column, or values of
            incompatible types meet.
    """
    if isinstance(expression, str):
        expression = parse_expression(expression)

    missing = sorted(name for name in expression.columns if name not in record)
    if missing:
        raise ExpressionError(_unknown_columns_message(missing, record.keys(), expression.text))

    frame = pd.DataFrame({name: [record[name]] for name in expression.columns}, index=[0])
    value = expression.evaluate(frame)[0]
    if isinstance(value, np.generic):
        return value.item()

    return value
