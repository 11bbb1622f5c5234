"""Pass 1, parse: source text -> `syntax.Program`, or an NndslError pointing at the problem."""
from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from . import syntax as S
from .errors import NndslError, Span, file_error

OPENERS = {"LPAR", "LSQB", "_INDEX_LSQB"}
CLOSERS = {"RPAR", "RSQB"}
# After these a `[` starts an index, as in Python (SPEC section 3): a name, a call's `)`, a
# parenthesised group's `)`, an index's `]`, and `ᵀ`.
INDEXABLE = {"NAME", "RPAR", "TRANSPOSE"}


def grammar_text() -> str:
    """The grammar, from inside the installed package or, in a source checkout, from grammar/."""
    packaged = resources.files("nndsl").joinpath("grammar/nndsl.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "nndsl.lark").read_text(encoding="utf-8")


class BracketNewlines(PostLex):
    """Drops newlines inside ( ) and [ ] so an expression may continue, and a newline right after
    another (a blank or comment line between), so one ends a line; tells an index's `[`
    (_INDEX_LSQB) from an array literal's; ends the file with a newline. Keeps the tokens an
    error message may need in `history`: those since the newline before the current statement
    (an error concerns the statement it is in, or the one just ended by a newline)."""

    always_accept = ("_NL", "LSQB")

    def __init__(self):
        self.history: list[Token] = []

    def process(self, stream):
        brackets = []                   # the open brackets' types, innermost last
        last = None
        closed_index = False            # whether `last` is the `]` of an index
        self.history = history = []
        newline = 0                     # where in `history` the last statement-ending newline is
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if brackets or (last is not None and last.type == "_NL"):
                    continue
                del history[:newline]   # outside brackets: it ends a statement
                newline = len(history)
            elif kind == "LSQB" and last is not None and (last.type in INDEXABLE or closed_index):
                tok = Token.new_borrow_pos("_INDEX_LSQB", tok.value, tok)
                kind = tok.type
            closed_index = False
            if kind in OPENERS:
                brackets.append(kind)
            elif kind in CLOSERS and brackets:
                closed_index = brackets.pop() == "_INDEX_LSQB"
            history.append(tok)
            last = tok
            yield tok
        if last is None or last.type != "_NL":
            end = Token.new_borrow_pos("_NL", "\n", last) if last is not None else Token("_NL", "\n", 0, 1, 1, 1, 1, 0)
            yield end


def read_source(path) -> str:
    """A .nn file's text as stored (line ends kept; a UTF-8 byte-order mark dropped)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise file_error(path, "no such file") from None
    except IsADirectoryError:
        raise file_error(path, "is a directory") from None
    except (OSError, UnicodeDecodeError) as err:
        raise file_error(path, f"cannot read: {getattr(err, 'strerror', None) or 'not UTF-8 text'}") from None


def span_of(meta_or_token) -> Span:
    m = meta_or_token
    return Span(m.line, m.column, m.end_line, m.end_column)


def union(a: Span, b: Span) -> Span:
    return Span(a.line, a.column, b.end_line, b.end_column)


KEYWORDS = ("model", "dim", "input", "param", "output", "loss", "def", "data", "train")


def normalize_name(tok: Token) -> str:
    name = unicodedata.normalize("NFKC", str(tok))
    if name in KEYWORDS:
        raise NndslError(f"'{name}' is a reserved word and cannot be a name", span_of(tok))
    if not name.isidentifier():
        raise NndslError(f"'{tok}' is not a valid name", span_of(tok))
    return name


def parse_number(tok: Token) -> S.Number:
    return S.Number(float(tok), str(tok), span_of(tok))


@dataclass(frozen=True)
class Spanned:
    """A rule's value whose own span is not the rule's extent: a parenthesised expression (the
    expression's span leaves out the parentheses, the enclosing rule's takes them in) or a
    shape (a tuple of sizes). The enclosing rule's callback unwraps it."""

    value: object
    span: Span


# The terminals the grammar names (`NAME: ...`) are the children a rule's builder receives; the
# other tokens (keywords and punctuation written in quotes, and `_NL`, `_INDEX_LSQB`) only mark
# where a rule starts and ends, as Lark's parse trees leave them out.
NAMED_TERMINALS = frozenset(re.findall(r"^([A-Z][A-Z0-9_]*)\s*:", grammar_text(), re.MULTILINE))


def rule_callback(build):
    """`build(self, span, *children)` as the callback Lark calls when it reduces a rule.

    Lark hands over every child (`keep_all_tokens`), with None for an absent optional part
    (`maybe_placeholders`). The rule's span runs from its first child to its last, as Lark's
    `propagate_positions` would place it: `param W[2]` from `param`, `f(x)` to its `)`, `(a + b) c`
    from the `(`. After an error the parse goes on, building nothing, so that a syntax error
    further on is still reported first, as when the tree was built after parsing."""
    def callback(self, children):
        if self.error is not None:
            return None
        first = last = None
        args = []
        for child in children:
            if child is None:
                args.append(None)
                continue
            if isinstance(child, Token):
                extent = child                  # a Token has a Span's line, column, end_line, end_column
                if child.type in NAMED_TERMINALS:
                    args.append(child)
            elif isinstance(child, Spanned):
                extent = child.span
                args.append(child.value)
            else:
                extent = child.span
                args.append(child)
            if first is None:
                first = extent
            last = extent
        span = Span(first.line, first.column, last.end_line, last.end_column) if first is not None else None
        try:
            return build(self, span, *args)
        except NndslError as err:
            self.error = err
            return None
    callback.__name__ = build.__name__
    return callback


def builds_while_parsing(cls):
    """Makes every public method of `cls` a rule's callback (see `rule_callback`)."""
    for name, method in list(vars(cls).items()):
        if callable(method) and not name.startswith("_"):
            setattr(cls, name, rule_callback(method))
    return cls


@builds_while_parsing
class ToSyntax:
    """Builds frozen syntax nodes while Lark parses: each method builds the node of the grammar
    rule (or alias) of its name. Any other rule is a bug and fails loudly, except the inlined
    `_rules`, which Lark takes apart itself."""

    def __init__(self):
        self.error: NndslError | None = None      # the first error a builder raised

    def __default__(self, data, children, meta):
        if data.startswith("_"):
            return Tree(data, children)
        raise AssertionError(f"no syntax node for grammar rule {data!r}")

    def indexable(self, span, expr):
        return Spanned(expr, span)            # `( expr )`

    # expressions
    def number(self, span, tok):
        return S.Number(float(tok), str(tok), span)     # the span is the token's

    def name(self, span, tok):
        return S.Name(normalize_name(tok), span)

    def call(self, span, func, *args):
        return S.Call(normalize_name(func), tuple(a for a in args if a is not None), span, span_of(func))

    def array(self, span, *items):
        return S.Array(tuple(i for i in items if i is not None), span)

    def neg(self, span, minus, operand):
        return S.Unary("neg", operand, span)

    def transpose(self, span, operand, mark):
        return S.Unary("transpose", operand, span)

    def superscript(self, span, base, mark):
        exponent = unicodedata.normalize("NFKC", str(mark)).replace("\u2212", "-")
        return S.Binary("pow", base, S.Number(float(exponent), exponent, span_of(mark)), span, str(mark))

    def index(self, span, operand, *subscripts):
        return S.Index(operand, subscripts, span)

    def at(self, span, number):
        return S.At(parse_index(number), span)

    def slice(self, span, start, stop):
        return S.Slice(None if start is None else parse_index(start), None if stop is None else parse_index(stop),
                       span)

    def _binary(op):
        def build(self, span, left, *rest):
            symbol = str(rest[0]) if len(rest) == 2 else {"add": "+", "mul": "*", "div": "/"}.get(op, "")
            return S.Binary(op, left, rest[-1], span, symbol)
        return build

    add = _binary("add")
    sub = _binary("sub")
    mul = _binary("mul")
    div = _binary("div")
    pow = _binary("pow")
    juxt = _binary("matmul")
    matop = _binary("matmul")

    # statements
    def shape(self, span, *sizes):
        out = []
        for tok in sizes:
            if tok is None:
                continue
            if tok.type == "NAME":
                out.append(S.Size(normalize_name(tok), span_of(tok)))
            else:
                out.append(S.Size(parse_int(tok, "a size"), span_of(tok)))
        return Spanned(tuple(out), span)

    def model_stmt(self, span, name):
        return S.ModelStmt(normalize_name(name), span)

    def dim_stmt(self, span, name, value):
        return S.DimStmt(normalize_name(name), parse_int(value, "a dim"), span, span_of(name))

    def input_stmt(self, span, name, shape):
        return S.InputStmt(normalize_name(name), shape or (), span, span_of(name))

    def param_stmt(self, span, name, shape, init=None):
        return S.ParamStmt(normalize_name(name), shape or (), init, span, span_of(name))

    def output_stmt(self, span, name, expr=None):
        return S.OutputStmt(normalize_name(name), expr, span, span_of(name))

    def loss_stmt(self, span, name, expr):
        return S.LossStmt(normalize_name(name), expr, span, span_of(name))

    def def_stmt(self, span, name, *rest):
        *params, body = rest
        names = tuple(normalize_name(p) for p in params if p is not None)
        return S.DefStmt(normalize_name(name), names, body, span, span_of(name))

    def data_file(self, span, path):
        return S.DataFileStmt(str(path)[1:-1], span)

    def data_inline(self, span, name, value):
        return S.DataInlineStmt(normalize_name(name), value, span, span_of(name))

    def bind_stmt(self, span, name, expr):
        return S.BindStmt(normalize_name(name), expr, span, span_of(name))

    def train_stmt(self, span, *settings):
        return S.TrainStmt(tuple(settings), span)

    def setting(self, span, key, value):
        return S.Setting(normalize_name(key), value, span, span_of(key))

    def setting_name(self, span, tok):
        return S.Name(normalize_name(tok), span_of(tok))

    def setting_call(self, span, func, *args):
        return S.SettingCall(normalize_name(func), tuple(a for a in args if a is not None), span,
                             span_of(func))

    def setting_arg(self, span, *parts):                # `key = value`, or a positional `value`
        *key, value = parts
        return S.SettingArg(normalize_name(key[0]) if key else None, value, span)

    def signed_number(self, span, minus, tok):
        number = parse_number(tok)
        if minus is None:
            return number
        return S.Number(-number.value, "-" + number.text, span)

    def flag_value(self, span, value):
        return value

    def start(self, span, *statements):
        return tuple(statements)

    def value(self, span, expr):
        return expr


_lock = threading.Lock()
_comments: list[Token] = []
_postlex = BracketNewlines()
_builder = ToSyntax()
_parser = Lark(grammar_text(), parser="lalr", start=["start", "value", "flag_value"], keep_all_tokens=True,
               maybe_placeholders=True, postlex=_postlex, transformer=_builder,
               lexer_callbacks={"COMMENT": _comments.append})
# Lark names most rules by the grammar's own Token, a str whose == is a Python method, and looks
# the name up in the parse table after each reduction: a plain str compares in C (about 4% of
# parsing).
for _rule in _parser.rules:
    _rule.origin.name = str(_rule.origin.name)


def parse_index(number: S.Number) -> int:
    if number.value != int(number.value) or not number.text.lstrip("-").isdigit():
        raise NndslError(f"an index is a whole number, not {number.text}", number.span)
    return int(number.value)


def parse_int(tok: Token, what: str) -> int:
    value = float(tok)
    if value != int(value) or value < 1 or not str(tok).isdigit():
        raise NndslError(f"{what} must be a positive integer, not {tok}", span_of(tok))
    return int(value)


# ---- translating Lark's errors -------------------------------------------------------------
TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a quoted path", "_NL": "end of line",
    "MINUS": "'-'", "MATOP": "'@'", "POWOP": "'^'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COMMA": "','", "EQUAL": "'='", "PLUS": "'+'", "STAR": "'*'", "SLASH": "'/'",
    "SEMICOLON": "';'", "$END": "end of file",
}
EXPRESSION_STARTS = {"NAME", "NUMBER", "LPAR", "LSQB", "MINUS"}


# Symbols from slides that nndsl does not take, and what to write instead (SPEC section 3).
SLIDE_SYMBOLS = {
    "×": "write * for the elementwise product, or · (or juxtaposition) for the matrix product",
    "∑": "write sum(...)",
    "∏": "nndsl has no product over elements; write the factors out with *",
    "÷": "write /",
    "√": "write sqrt(...)",
    "½": "write 0.5", "⅓": "write 1/3", "¼": "write 0.25", "¾": "write 0.75",
    "∘": "write ⊙ (or *) for the elementwise product",
    "∗": "write * for the elementwise product",
    "⊗": "write outer products as a matrix product of a column and a row, or use *",
    "≔": "write =",
    "←": "write =",
    "ᵗ": "write ᵀ (U+1D40) or transpose(...)",
}


def describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    return f"'{tok}'"


def expectation(expected: set[str]) -> str:
    expected = {e for e in expected if not e.startswith("__")}
    if EXPRESSION_STARTS & expected and len(expected - EXPRESSION_STARTS) <= 3:
        return "an expression"
    words = sorted({TOKEN_WORDS.get(e, f"'{e.lower()}'" if e.isupper() else e) for e in expected})
    if len(words) > 5:
        return "a statement" if "a name" in words else "something else"
    return " or ".join(words)


def unclosed_bracket(history: list[Token], upto: Token | None) -> Token | None:
    """The innermost bracket still open when the parser reached `upto` (None: the end)."""
    stack = []
    for t in history:
        if t is upto:
            break
        if t.type in OPENERS:
            stack.append(t)
        elif t.type in CLOSERS and stack:
            stack.pop()
    return stack[-1] if stack else None


def translate(err: UnexpectedInput, source: str, history: list[Token]) -> NndslError:
    if isinstance(err, UnexpectedCharacters):
        ch = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        span = Span(err.line, err.column, err.line, err.column + 1)
        if ch == "\"":
            return NndslError("unterminated string", span)
        if ch in SLIDE_SYMBOLS:
            return NndslError(f"'{ch}' is not nndsl notation: {SLIDE_SYMBOLS[ch]}", span)
        return NndslError(f"unexpected character {ch!r} (U+{ord(ch):04X})" if ch else "unexpected character", span)
    tok = err.token if isinstance(err, UnexpectedToken) else None
    expected = set(getattr(err, "expected", ()) or ())
    prev = None
    if tok is not None:
        # The token before the offending one (which the lexer may not have handed on yet).
        before = [t for t in history if t is not tok and t.type != "$END"
                  and (tok.type == "$END" or (t.end_pos or 0) <= (tok.start_pos or 0))]
        prev = before[-1] if before else None
    if tok is None or tok.type == "$END":
        opener = unclosed_bracket(history, None)
        if opener is not None:
            return NndslError(f"'{opener}' is never closed", span_of(opener))
        at = prev or (history[-1] if history else None)
        span = Span(at.end_line, at.end_column, at.end_line, at.end_column + 1) if at is not None else Span(1, 1, 1, 2)
        return NndslError(f"unexpected end of file, expected {expectation(expected)}", span)
    opener = unclosed_bracket(history, tok)
    if opener is not None and (tok.type == "_NL" or tok.line > opener.line):
        return NndslError(f"'{opener}' is never closed", span_of(opener))
    span = span_of(tok)
    if tok.type == "_NL":
        span = Span(tok.line, tok.column, tok.line, tok.column + 1)
    want = expectation(expected)
    if prev is not None and str(prev) in KEYWORDS and tok.type in ("EQUAL", "LPAR"):
        return NndslError(f"'{prev}' is a reserved word and cannot be a name", span_of(prev))
    call = unclosed_bracket(history, tok)
    if tok.type == "EQUAL" and prev is not None and prev.type == "NAME" and call is not None and call.type == "LPAR":
        at = next(i for i, t in enumerate(history) if t is call)     # by identity: tokens equal by text
        function = history[at - 1] if at else None
        if function is not None and function.type == "NAME":
            return NndslError(f"{function}() takes no keyword arguments: give its arguments by position "
                              f"(`{prev} =` is not nndsl notation)", union(span_of(prev), span_of(tok)))
    if prev is not None and prev.type != "_NL" and want == "an expression":
        return NndslError(f"expected an expression after '{prev}', found {describe(tok)}", span)
    if tok.type in CLOSERS and unclosed_bracket(history, tok) is None:
        return NndslError(f"{describe(tok)} has no matching opening bracket", span)
    return NndslError(f"unexpected {describe(tok)}, expected {want}", span)


def parse(source: str, filename: str = "<string>", start: str = "start"):
    """Parse a whole file (start="start"), a command-line value (start="value") or the value of a
    training flag (start="flag_value")."""
    with _lock:
        _comments.clear()
        _builder.error = None
        try:
            result = _parser.parse(source, start=start)
        except UnexpectedInput as err:
            raise translate(err, source, _postlex.history).located(filename, source) from None
        finally:
            _postlex.history = []
        error = _builder.error
        comments = tuple(S.Comment(str(c), span_of(c)) for c in _comments)
    if error is not None:
        raise error.located(filename, source) from None
    if start != "start":
        return result
    return S.Program(result, comments, source, filename)
