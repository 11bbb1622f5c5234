"""Pass 3, lower: resolved statements -> a networkx graph of registry ops with checked shapes.

Each expression is walked with an explicit stack (never recursion), user functions are inlined
at their call sites, and every node's shape comes from its op's shape rule as it is added.
"""
from __future__ import annotations

import unicodedata

from dataclasses import dataclass, field

import networkx as nx

from . import syntax as S
from .errors import NndslError, closest
from .graph import GraphBuilder
from .ops import ALIASES, REGISTRY, fmt_shape, lookup, subscripts_text, user_functions
from .resolve import Resolved, literal_array



@dataclass
class Lowered:
    graph: nx.DiGraph
    inputs: dict = field(default_factory=dict)      # name -> node
    params: dict = field(default_factory=dict)      # name -> node
    named: dict = field(default_factory=dict)       # every bound value: name -> node, in order
    outputs: dict = field(default_factory=dict)     # name -> node
    loss: tuple | None = None                       # (name, node)


@dataclass(frozen=True)
class Frame:
    """Where names are looked up: a function's parameters, or the file's globals."""

    local: dict          # name -> node (a function's arguments)
    scope: str           # "f/g" while inlining g inside f
    call: str            # the call sites of that chain, "12:5/3:14": one per inlined call
    index: int           # the statement being lowered (for use-before-binding)

    @property
    def where(self) -> dict:
        """The node attributes that place a node inside inlined calls."""
        return {"scope": self.scope, "call": self.call}


def lower(resolved: Resolved) -> Lowered:
    builder = GraphBuilder()
    out = Lowered(builder.graph)
    program = resolved.program
    for index, st in enumerate(program.statements):
        if isinstance(st, S.InputStmt):
            node = builder.add("input", shape=resolved.shapes[st.name], batched=True, name=st.name, span=st.span)
            out.inputs[st.name] = out.named[st.name] = node
        elif isinstance(st, S.ParamStmt):
            node = builder.add("param", shape=resolved.shapes[st.name], batched=False, name=st.name, span=st.span)
            out.params[st.name] = out.named[st.name] = node
        elif isinstance(st, (S.BindStmt, S.LossStmt)) or (isinstance(st, S.OutputStmt) and st.expr is not None):
            node = lower_expression(st.expr, Frame({}, "", "", index), resolved, out, builder)
            out.named[st.name] = bind(builder, node, st)
    for st in resolved.outputs:
        out.outputs[st.name] = out.named[st.name]
    if resolved.loss is not None:
        st = resolved.loss
        node = out.named[st.name]
        shape = builder.graph.nodes[node]["shape"]
        if shape != ():
            raise NndslError(f"a loss must be a per-sample scalar, but '{st.name}' has shape {fmt_shape(shape)}",
                             st.expr.span)
        out.loss = (st.name, node)
    if not out.outputs:
        last = [st for st in program.statements if isinstance(st, S.BindStmt)]
        if last:
            out.outputs[last[-1].name] = out.named[last[-1].name]
        elif out.loss is not None:
            out.outputs[out.loss[0]] = out.loss[1]
    return out


def bind(builder: GraphBuilder, node, st):
    """Give a computed value its name; an alias of a named value gets an identity node."""
    attrs = builder.nodes[node]
    if attrs["name"] is None and not REGISTRY[attrs["op"]].leaf:
        attrs["name"] = st.name
        return node
    return builder.add("identity", node, name=st.name, span=st.expr.span)


def lower_expression(expr, frame: Frame, resolved: Resolved, out: Lowered, builder: GraphBuilder):
    """Post-order walk with an explicit stack; results are node ids on `values`."""
    values: list = []
    stack: list = [(expr, frame, False)]
    while stack:
        e, fr, ready = stack.pop()
        if ready:                       # its arguments are the last values
            n = len(S.children(e))
            args = values[len(values) - n:]
            del values[len(values) - n:]
            if isinstance(e, S.Call) and e.func in resolved.defs and e.func not in fr.local:
                fn = resolved.defs[e.func]
                scope = f"{fr.scope}/{fn.name}" if fr.scope else fn.name
                site = f"{e.span.line}:{e.span.column}"
                call = f"{fr.call}/{site}" if fr.call else site
                stack.append((fn.body, Frame(dict(zip(fn.params, args)), scope, call, fr.index), False))
            elif isinstance(e, S.Call) and is_value(e.func, fr, resolved):
                tensor = lookup_name(S.Name(e.func, e.func_span), fr, resolved, out, builder)
                values.append(product(builder, tensor, args[0], e.span, fr))       # W(z) is W z
            else:
                values.append(build_node(e, args, fr, builder))
        elif isinstance(e, S.Number):
            values.append(builder.const(e.value, span=e.span, **fr.where))
        elif isinstance(e, S.Name):
            values.append(lookup_name(e, fr, resolved, out, builder))
        elif isinstance(e, S.Array):
            values.append(builder.const(literal_array(e), span=e.span, **fr.where))
        elif isinstance(e, S.Unary) and e.op == "neg" and isinstance(e.operand, S.Number):
            values.append(builder.const(-e.operand.value, span=e.span, **fr.where))
        else:
            if isinstance(e, S.Call):
                check_call(e, fr, resolved, out)
            elif isinstance(e, S.Binary) and e.op == "pow":
                check_power(e, fr, resolved)
            stack.append((e, fr, True))
            stack.extend([(child, fr, False) for child in reversed(S.children(e))])
    (result,) = values
    return result


def lookup_name(e: S.Name, fr: Frame, resolved: Resolved, out: Lowered, builder: GraphBuilder):
    if e.id in fr.local:
        return fr.local[e.id]
    if e.id in resolved.bound_at:
        if resolved.bound_at[e.id] >= fr.index:
            line = resolved.program.statements[resolved.bound_at[e.id]].span.line
            raise NndslError(f"'{e.id}' is used before it is bound (line {line})", e.span)
        if e.id in resolved.defs:
            raise NndslError(f"'{e.id}' is a function; call it as {e.id}(...)", e.span)
        if e.id in resolved.dims:
            return builder.const(resolved.dims[e.id], span=e.span, **fr.where)
        return out.named[e.id]
    if lookup(e.id) is not None:
        raise NndslError(f"'{e.id}' is a function; call it as {e.id}(...)", e.span)
    raise NndslError(f"undefined name '{e.id}'{suggest(e.id, list(resolved.bound_at) + list(fr.local))}", e.span)


def is_value(name: str, fr: Frame, resolved: Resolved) -> bool:
    return name in fr.local or (name in resolved.bound_at and name not in resolved.defs)


def check_call(e: S.Call, fr: Frame, resolved: Resolved, out: Lowered) -> None:
    """Errors a call can have before its arguments are lowered."""
    n = len(e.args)
    if is_value(e.func, fr, resolved):
        if n != 1:
            raise NndslError(f"'{e.func}' is a tensor, not a function: {e.func}(z) means {e.func} z, "
                             f"and takes one argument, not {n}", e.span)
        return
    if e.func in resolved.defs:
        fn = resolved.defs[e.func]
        if resolved.bound_at[e.func] >= fr.index and not fr.scope:
            raise NndslError(f"'{e.func}' is used before it is defined (line {fn.span.line})", e.func_span)
        if n != len(fn.params):
            raise NndslError(f"{e.func}() takes {plural(len(fn.params), 'argument')}, got {n}", e.span)
        return
    op = lookup(e.func)
    if op is None or not op.callable:
        raise NndslError(f"unknown function '{e.func}'{suggest_function(e.func, list(resolved.defs))}", e.func_span)
    if op.arity is not None and n != op.arity:
        raise NndslError(f"{e.func}() takes {plural(op.arity, 'argument')}, got {n}", e.span)


def build_node(e, args, fr: Frame, builder: GraphBuilder):
    kw = dict(span=e.span, **fr.where)
    if isinstance(e, S.Unary):
        return builder.add(e.op, *args, what="ᵀ" if e.op == "transpose" else None, **kw)
    if isinstance(e, S.Index):
        return build_index(e, args[0], builder, kw)
    if isinstance(e, S.Binary):
        a, b = args
        if e.op == "matmul":
            return product(builder, a, b, e.span, fr)
        return builder.add(e.op, a, b, what=f"'{e.symbol}'", **kw)
    if isinstance(e, S.Call):
        op = lookup(e.func)
        static = {}
        if op.attrs:
            args, static = indexed_last(e, args, builder)
        return builder.add(op.name, *args, what=f"{e.func}()", **kw, **static)
    raise AssertionError(f"no lowering for {type(e).__name__}")


def indexed_last(e: S.Call, args: list, builder: GraphBuilder) -> tuple[list, dict]:
    """A function with static subscripts takes them from its last argument, written indexed:
    `index_grad(g, x[1:3])` reads x and the subscripts `[1:3]` (the index node itself goes)."""
    last = builder.graph.nodes[args[-1]]
    if last["op"] != "index":
        raise NndslError(f"{e.func}() takes an indexed value as its last argument: {e.func}(g, x[0])", e.args[-1].span)
    (x,) = [a for a, _ in builder.graph.pred[args[-1]].items()]
    static = {"subscripts": last["subscripts"]}
    if builder.graph.out_degree(args[-1]) == 0 and last["name"] is None:
        builder.graph.remove_node(args[-1])
    return args[:-1] + [x], static


def product(builder: GraphBuilder, a, b, span, fr: Frame):
    """Juxtaposition and `@ · ∙ ⋅`: a matrix product, or scaling when either side is a scalar."""
    kw = dict(span=span, **fr.where)
    if () in (builder.nodes[a]["shape"], builder.nodes[b]["shape"]):
        return builder.add("mul", a, b, what="scaling", **kw)    # `2 x`, `0.5 (y - t)^2`
    return builder.add("matmul", a, b, what="matrix product", **kw)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def suggest(name: str, candidates: list) -> str:
    close = closest(name, candidates)
    return f"; did you mean '{close}'?" if close else ""


# Names from slides and other tools for nndsl's functions (aliases and case are handled apart).
SLIDE_FUNCTIONS = {"Σ": "sum", "ln": "log", "sgn": "sign", "heaviside": "step", "logistic": "sigmoid",
                   "logsoftmax": "log_softmax", "argmax": "argmax", "cat": "concat", "concatenate": "concat"}


def suggest_function(name: str, defs: list) -> str:
    """`; did you mean ...?` for an unknown function: slide names, Greek aliases spelled out
    (`sigma` for `σ`), then the closest name ignoring case (`ReLU` for `relu`)."""
    if name in SLIDE_FUNCTIONS:
        return f"; write {SLIDE_FUNCTIONS[name]}(...)"
    spelled = {unicodedata.name(a).split()[-1].lower(): a for a in ALIASES if len(a) == 1
               and "SMALL" in unicodedata.name(a)}
    if name.lower() in spelled:
        alias = spelled[name.lower()]
        return f"; did you mean '{ALIASES[alias]}' (or '{alias}')?"
    return suggest(name, user_functions() + defs)


def check_power(e: S.Binary, fr: Frame, resolved: Resolved) -> None:
    """Slide notation that is not nndsl's: `e^x` and `W^T` with `e`, `T` unbound."""
    def unbound(x):
        return isinstance(x, S.Name) and x.id not in fr.local and x.id not in resolved.bound_at
    if unbound(e.left) and e.left.id == "e":
        raise NndslError("'e' is not bound: write exp(x) for e^x", e.span)
    if unbound(e.right) and e.right.id == "T":
        base = e.left.id if isinstance(e.left, S.Name) else "(...)"
        raise NndslError(f"'T' is not bound: the transpose is written {base}ᵀ or transpose({base}), "
                         f"not {base}^T", e.span)


def build_index(e: S.Index, x, builder: GraphBuilder, kw: dict):
    subscripts = subscripts_text([s.index if isinstance(s, S.At) else slice(s.start, s.stop) for s in e.subscripts])
    try:
        return builder.add("index", x, subscripts=subscripts, what="index", **kw)
    except NndslError as err:
        bracket = e.subscripts[0].span.column - 1
        if (e.operand.span.end_line, e.operand.span.end_column) != (e.span.line, bracket):
            err.message += (f"; a `[` after a name is an index (as in Python): for a product with an "
                            f"array literal write {'W' if not isinstance(e.operand, S.Name) else e.operand.id} · [...]")
        raise
