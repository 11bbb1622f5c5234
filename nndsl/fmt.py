"""`nndsl fmt`: canonical formatting of a .nn file, printed from its syntax tree.

The canonical style (docs/fmt.md has examples):

- One statement per line; statements joined by `;` are split onto their own lines.
- Single spaces around `=`, `+`, `-`, `*`, `/` and the explicit product symbols; power is
  written `^` with no spaces (`(y - t)^2`); unary minus has no space (`-x`, `a - -b`).
- Spellings: `**` becomes `^`, `−` (U+2212) becomes `-`. The product keeps the user's
  choice: juxtaposition stays juxtaposition with one space (`W2 max(0, W1 x)`), and an
  explicit `@ · ∙ ⋅` stays that symbol. Names are printed NFKC-normalised, as the compiler
  reads them (a pasted `𝒘` becomes `w`); numbers exactly as written (`1e-3`, `.5`, `2.`).
- Parentheses: the minimal set that the precedence table (SPEC section 3) needs, so the
  printed text parses back to the same syntax tree. Products and powers are
  right-associative: `W2 W1 x` is `W2 (W1 x)`, so `(W2 W1) x` keeps its parentheses;
  `-a b` is `-(a b)`, so `(-a) b` keeps them; `a - (b - c)` and `a / (b * c)` keep them.
  A negative exponent needs none (`x^-2`). Two cases keep parentheses the table alone would
  drop, because the text would otherwise read as a call: a name (or power ending in a
  name) juxtaposed with a parenthesised group, `(W) (a + b)`.
- Calls are `f(a, b)`. A call of a tensor (SPEC: `W(z)` is `W z`) is written with a
  space, `W (z)`, so it reads as the product it is; it stays a call in the tree.
- Declarations: `input x[2, h]`, `input s` (a scalar, also when written `s[]`),
  `param W[2, 3] = normal(0.1)`, `dim n = 4`, `def f(a, b) = ...`, `data "path"`;
  array literals `[[0, 1], [1, 0]]`.
- Comments are kept: a comment on a line of its own stays on its own line, in its place
  among the statements; a comment after a statement follows it, two spaces after the code,
  and the trailing comments of consecutive lines are aligned in one column (as gofmt does).
- Blank lines: none at the start or the end of the file; where the user left one or more
  blank lines between statements (or comments), exactly one.
- The file ends with exactly one newline (an empty file stays empty); line ends are `\\n`.
- Long lines are not wrapped. Inside an array literal or a call's argument list, a line
  break the user made between two items is kept (after the comma, the next line aligned
  one column right of the opening bracket), and so are the comments at such breaks; every
  other line break inside brackets, and every `\\` continuation, is joined. A comment
  inside a statement that sits at no kept break moves to its own line just above the
  statement.

Formatting never changes meaning: `format_source` parses its own output and checks that the
syntax tree (spans aside) and the comments are unchanged, and raises instead of returning
anything else. All walks over expressions use explicit stacks (expressions can be thousands
of levels deep).
"""
from __future__ import annotations

import bisect
import dataclasses
import difflib
from dataclasses import dataclass, field

from . import syntax as S
from .ops import subscripts_text
from .parser import parse
from .resolve import binding_statements

# Precedence levels, loosest first (SPEC section 3). Atoms (names, numbers, calls, arrays,
# parenthesised groups) are ATOM.
SUM, PRODUCT, NEGATION, MATMUL, POWER, POSTFIX, ATOM = 1, 2, 3, 4, 5, 6, 7
LEVEL = {"add": SUM, "sub": SUM, "mul": PRODUCT, "div": PRODUCT, "matmul": MATMUL, "pow": POWER}
# The level each operand must have to go without parentheses: (left, right). The exponent
# of a power is special (see exponent_ok).
OPERANDS = {"add": (SUM, PRODUCT), "sub": (SUM, PRODUCT), "mul": (PRODUCT, NEGATION),
            "div": (PRODUCT, NEGATION), "matmul": (POWER, MATMUL), "pow": (ATOM, None)}
SPELLING = {"add": " + ", "sub": " - ", "mul": " * ", "div": " / ", "pow": "^"}

PUSH, POP = object(), object()          # markers: an opening bracket's column, and its end
SPAN_FIELDS = frozenset({"span", "name_span", "func_span", "key_span"})


@dataclass
class Break:
    """A line break the user made between two items of a call or an array literal."""

    after: int                      # the source line the earlier item ends on
    before: int                     # the source line the later item starts on
    trailing: list = field(default_factory=list)    # comment(s) at the end of line `after`
    own: list = field(default_factory=list)         # comments on lines of their own in between


@dataclass
class Block:
    """One statement with its comments, or (statement None) a comment on a line of its own."""

    at: tuple                       # (line, column) where it starts, for ordering
    first: int                      # first and last source line, for blank-line decisions
    last: int
    statement: object = None
    hoisted: list = field(default_factory=list)     # comments from inside, printed above
    trailing: list = field(default_factory=list)
    comment: str = ""
    breaks: dict = field(default_factory=dict)      # (id(node), item index) -> Break
    break_lines: dict = field(default_factory=dict)  # source line -> (Break, "trailing" or "own")


def format_source(text: str, filename: str = "<string>") -> str:
    """The canonical text of a .nn file; raises NndslError if it does not parse."""
    program = parse(text, filename)
    formatted = Formatter(program).format()
    verify(program, formatted, filename)
    return formatted


def unified_diff(before: str, after: str, path) -> str:
    """What formatting changes, as a unified diff (every line newline-terminated)."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"{path}", tofile=f"{path} (formatted)")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# ---- expressions -------------------------------------------------------------------------
def level(e) -> int:
    if isinstance(e, S.Binary):
        return LEVEL[e.op]
    if isinstance(e, S.Unary):
        return POSTFIX if e.op == "transpose" else NEGATION
    if isinstance(e, S.Index):
        return POSTFIX
    return ATOM


def superscript(e) -> bool:
    """A power written with a superscript exponent, `x²`."""
    return isinstance(e, S.Binary) and e.op == "pow" and e.symbol not in ("^", "**")


def indexable(e) -> bool:
    """Whether `e`, unparenthesised, may be followed by `[` of an index (grammar: `indexable`)."""
    transposed = False
    while isinstance(e, S.Unary) and e.op == "transpose":
        e, transposed = e.operand, True
    return isinstance(e, (S.Name, S.Call, S.Index)) or (transposed and isinstance(e, (S.Number, S.Array)))


def exponent_ok(e) -> bool:
    """Whether `e` may stand unparenthesised after `^`: a power or atom, signs allowed (`x^-2`)."""
    while isinstance(e, S.Unary):
        e = e.operand
    return level(e) >= POWER


def analyse(expr, breaks: dict) -> set:
    """Post-order walk: the ids of the sub-expressions that need parentheses.

    Also records in `breaks` every line break the user made between two items of a call or
    an array literal. For each node it tracks whether its text (unparenthesised) begins with
    `(` and ends with a name, to catch `W (a + b)`, which would read as a call.
    """
    wrapped: set = set()
    starts_paren: dict = {}
    ends_name: dict = {}
    starts_array: dict = {}         # the text begins with an array literal's `[`
    ends_index: dict = {}           # a `[` right after the text would start an index
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        kids = S.children(e)
        if kids and not done:
            stack.append((e, True))
            stack.extend((k, False) for k in kids)
            continue
        key = id(e)
        if isinstance(e, S.Binary):
            left, right = e.left, e.right
            need_left, need_right = OPERANDS[e.op]
            wrap_left = level(left) < (POSTFIX if superscript(e) else need_left)
            wrap_right = not exponent_ok(right) if e.op == "pow" else level(right) < need_right
            if (e.op == "matmul" and e.symbol == "" and not wrap_left and ends_name[id(left)]
                    and (wrap_right or starts_paren[id(right)])):
                wrap_left = True
            if (e.op == "matmul" and e.symbol == "" and not wrap_right and starts_array[id(right)]
                    and (wrap_left or ends_index[id(left)])):
                wrap_right = True          # `W [1, 2]` would read as an index: `W ([1, 2])`
            if wrap_left:
                wrapped.add(id(left))
            if wrap_right:
                wrapped.add(id(right))
            starts_paren[key] = wrap_left or starts_paren[id(left)]
            starts_array[key] = not wrap_left and starts_array[id(left)]
            ends_name[key] = not superscript(e) and not wrap_right and ends_name[id(right)]
            ends_index[key] = not superscript(e) and (wrap_right or ends_index[id(right)])
        elif isinstance(e, (S.Unary, S.Index)):
            postfix = isinstance(e, S.Index) or e.op == "transpose"
            if isinstance(e, S.Index):
                wrap = not indexable(e.operand)
            else:
                wrap = level(e.operand) < (POSTFIX if postfix else NEGATION)
            if wrap:
                wrapped.add(id(e.operand))
            starts_paren[key] = postfix and (wrap or starts_paren[id(e.operand)])
            starts_array[key] = postfix and not wrap and starts_array[id(e.operand)]
            ends_name[key] = not postfix and not wrap and ends_name[id(e.operand)]
            ends_index[key] = postfix or wrap or ends_index[id(e.operand)]
        else:
            starts_paren[key] = False
            starts_array[key] = isinstance(e, S.Array)
            ends_name[key] = isinstance(e, S.Name)
            ends_index[key] = isinstance(e, (S.Name, S.Call))
            if isinstance(e, (S.Call, S.Array)):
                for i in range(1, len(kids)):
                    before, after = kids[i - 1].span, kids[i].span
                    if after.line > before.end_line:
                        breaks[(key, i)] = Break(before.end_line, after.line)
        for k in kids:
            del starts_paren[id(k)], ends_name[id(k)], starts_array[id(k)], ends_index[id(k)]
    return wrapped


def expression_tokens(expr, wrapped: set, breaks: dict, tensors) -> list:
    """Pre-order walk: the text pieces of `expr`, with PUSH/POP and Break markers."""
    out: list = []
    stack: list = [expr]
    while stack:
        e = stack.pop()
        if not isinstance(e, (S.Number, S.Name, S.Call, S.Unary, S.Binary, S.Array, S.Index)):
            out.append(e)
            continue
        if isinstance(e, S.Number):
            seq = [e.text]
        elif isinstance(e, S.Name):
            seq = [e.id]
        elif isinstance(e, S.Unary):
            seq = [e.operand, "ᵀ"] if e.op == "transpose" else ["-", e.operand]
        elif isinstance(e, S.Index):
            seq = [e.operand, subscripts_text([s.index if isinstance(s, S.At) else slice(s.start, s.stop)
                                               for s in e.subscripts])]
        elif superscript(e):
            seq = [e.left, e.symbol]
        elif isinstance(e, S.Binary):
            if e.op == "matmul":
                op = f" {e.symbol} " if e.symbol else " "
            elif e.op == "mul" and e.symbol == "⊙":
                op = " ⊙ "
            else:
                op = SPELLING[e.op]
            seq = [e.left, op, e.right]
        else:
            if isinstance(e, S.Call):
                opening, closing = (e.func + (" (" if e.func in tensors else "(")), ")"
                items = e.args
            else:
                opening, closing, items = "[", "]", e.items
            seq = [opening, PUSH]
            for i, item in enumerate(items):
                if i:
                    brk = breaks.get((id(e), i))
                    seq.extend((",", brk) if brk is not None else (", ",))
                seq.append(item)
            seq += [POP, closing]
        if id(e) in wrapped:
            seq = ["(", *seq, ")"]
        stack.extend(reversed(seq))
    return out


def lay_out(tokens: list, trailing: list) -> list:
    """Join text pieces into lines, breaking where the user broke between items: a list of
    (code, trailing comment or "") pairs."""
    lines: list = []
    pieces: list = []
    column = 0
    columns: list = []
    for t in tokens:
        if t is PUSH:
            columns.append(column)
        elif t is POP:
            columns.pop()
        elif isinstance(t, Break):
            lines.append(("".join(pieces), "  ".join(t.trailing)))
            indent = " " * columns[-1]
            lines.extend((indent + c, "") for c in t.own)
            pieces, column = [indent], len(indent)
        else:
            pieces.append(t)
            column += len(t)
    lines.append(("".join(pieces), "  ".join(trailing)))
    return lines


def align_comments(lines: list) -> list:
    """Trailing comments on consecutive lines start in one column, two spaces after the
    longest code among them (as gofmt aligns them)."""
    out = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j][1]:
            j += 1
        if j == i:
            out.append(lines[i][0])
            i += 1
            continue
        column = max(len(code) for code, _ in lines[i:j]) + 2
        out.extend(code.ljust(column) + comment for code, comment in lines[i:j])
        i = j
    return out


# ---- statements and comments -------------------------------------------------------------
class Formatter:
    def __init__(self, program: S.Program):
        self.program = program
        self.values = {name for _, name, _, st in binding_statements(program) if not isinstance(st, S.DefStmt)}
        self.analysis: dict = {}        # id(expression) -> ids of its sub-expressions to parenthesise

    def format(self) -> str:
        lines: list = []
        last = None
        for block in self.blocks():
            if last is not None and block.first - last >= 2:
                lines.append(("", ""))
            last = block.last
            if block.statement is None:
                lines.append((block.comment, ""))
                continue
            lines.extend((c, "") for c in block.hoisted)
            lines.extend(lay_out(self.statement_tokens(block), block.trailing))
        return "\n".join(align_comments(lines)) + "\n" if lines else ""

    def blocks(self) -> list:
        """Statements and own-line comments in source order, each comment placed."""
        statements = self.program.statements
        blocks = []
        for st in statements:
            block = Block((st.span.line, st.span.column), st.span.line, st.span.end_line, st)
            for e in _expressions(st):
                self.analysis[id(e)] = analyse(e, block.breaks)
            for brk in block.breaks.values():
                block.break_lines[brk.after] = (brk, "trailing")
                block.break_lines.update((line, (brk, "own")) for line in range(brk.after + 1, brk.before))
            blocks.append(block)
        starts = [(st.span.line, st.span.column) for st in statements]
        loose = []
        for c in self.program.comments:
            text = c.text.rstrip()
            at = (c.span.line, c.span.column)
            i = bisect.bisect_right(starts, at) - 1
            if i < 0:
                loose.append(Block(at, c.span.line, c.span.line, comment=text))
                continue
            block, span = blocks[i], statements[i].span
            if at < (span.end_line, span.end_column):
                place_inner(block, c.span.line, text)
            elif span.end_line == c.span.line:
                block.trailing.append(text)
            else:
                loose.append(Block(at, c.span.line, c.span.line, comment=text))
        return sorted(blocks + loose, key=lambda b: b.at)

    def statement_tokens(self, block: Block) -> list:
        st = block.statement
        if isinstance(st, S.ModelStmt):
            return [f"model {st.name}"]
        if isinstance(st, S.DimStmt):
            return [f"dim {st.name} = {st.value}"]
        if isinstance(st, S.InputStmt):
            return [f"input {st.name}{shape_text(st.shape)}"]
        if isinstance(st, S.DataFileStmt):
            return [f'data "{st.path}"']
        if isinstance(st, S.TrainStmt):
            return ["train " + ", ".join(f"{s.key} = {setting_text(s.value)}" for s in st.settings)]
        if isinstance(st, S.ParamStmt):
            head = [f"param {st.name}{shape_text(st.shape)}"] + ([" = "] if st.init is not None else [])
        elif isinstance(st, S.OutputStmt):
            head = [f"output {st.name}"] + ([" = "] if st.expr is not None else [])
        elif isinstance(st, S.LossStmt):
            head = [f"loss {st.name} = "]
        elif isinstance(st, S.DefStmt):
            head = [f"def {st.name}({', '.join(st.params)}) = "]
        elif isinstance(st, S.DataInlineStmt):
            head = [f"data {st.name} = "]
        elif isinstance(st, S.BindStmt):
            head = [f"{st.name} = "]
        else:
            raise AssertionError(f"fmt: no printing rule for {type(st).__name__}")
        tensors = self.values | set(st.params) if isinstance(st, S.DefStmt) else self.values
        for e in _expressions(st):
            head += expression_tokens(e, self.analysis[id(e)], block.breaks, tensors)
        return head


def place_inner(block: Block, line: int, text: str) -> None:
    """A comment inside a statement: at a kept line break if there is one, else above it."""
    if line not in block.break_lines:
        block.hoisted.append(text)
        return
    brk, where = block.break_lines[line]
    (brk.trailing if where == "trailing" else brk.own).append(text)


def setting_text(value) -> str:
    """A `train` setting's value: `3000`, `correct`, `sgd(lr = 0.5, momentum = 0.9)`."""
    if isinstance(value, S.Number):
        return value.text
    if isinstance(value, S.Name):
        return value.id
    args = (a.value.text if a.key is None else f"{a.key} = {a.value.text}" for a in value.args)
    return f"{value.func}({', '.join(args)})"


def shape_text(shape: tuple) -> str:
    return f"[{', '.join(str(size.value) for size in shape)}]" if shape else ""


EXPRESSION_FIELD = {S.BindStmt: "expr", S.OutputStmt: "expr", S.LossStmt: "expr", S.ParamStmt: "init",
                    S.DefStmt: "body", S.DataInlineStmt: "value"}


def _expressions(st) -> list:
    """The expression of a statement, if it has one, as a list."""
    e = getattr(st, EXPRESSION_FIELD.get(type(st), ""), None)
    return [] if e is None else [e]


# ---- the safety net ----------------------------------------------------------------------
def verify(program: S.Program, formatted: str, filename: str) -> None:
    """Check that `formatted` parses to the same tree and comments; a failure is a bug here."""
    try:
        again = parse(formatted, filename)
    except Exception as err:                       # our output must always parse
        raise AssertionError(f"fmt produced text that does not parse ({err}); please report this") from None
    problem = tree_difference(program.statements, again.statements)
    if problem is None and [c.text.rstrip() for c in program.comments] != [c.text for c in again.comments]:
        problem = "the comments differ"
    if problem is not None:
        raise AssertionError(f"fmt would change the meaning of {filename}: {problem}; please report this")


def tree_difference(a, b) -> str | None:
    """None if two syntax trees are equal apart from spans and spellings, else what differs."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return f"{type(x).__name__} became {type(y).__name__}"
        if isinstance(x, tuple):
            if len(x) != len(y):
                return "a different number of items"
            stack.extend(zip(x, y))
        elif dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                if f.name in SPAN_FIELDS:
                    continue
                u, v = getattr(x, f.name), getattr(y, f.name)
                if isinstance(x, S.Binary) and f.name == "symbol":
                    u, v = canonical_symbol(u), canonical_symbol(v)
                stack.append((u, v))
        elif x != y:
            return f"{x!r} became {y!r}"
    return None


def canonical_symbol(symbol: str) -> str:
    return {"**": "^", "\u2212": "-"}.get(symbol, symbol)
