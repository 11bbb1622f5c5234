"""The compiled graph written back as source: a .nn program, LaTeX equations, a NumPy module.

`export(model, lang, grad)` is what `nndsl export --format nn|latex|python` calls. With `grad`
the graph is `Model.gradient_graph` over every parameter: the forward values, the batch-mean
objective and the backward graph, whose nodes use the same registry ops. Each op's spelling in
each language is the `printed` slot of its registry entry (nndsl/ops/, `Printed`); this module
only walks the nodes in order (forward values first, then the backward pass in the order it
runs), names the values, and decides which get a line of their own.

A value gets a line, and a name, when the model names it (a binding, a parameter), when it is a
gradient (`dL_dW1` for a named value, `δ1`, `δ2`, ... for an unnamed one), an output or the loss,
when several steps read it, or when its expression would nest too deep; any other value is
written inline where it is read. Constants are written as literals.

In .nn the batch has notation of its own (docs/language.md, "Gradient programs"): a parameter's
gradient is a sum over the samples, `batch_sum(...)`; the objective is
`batch_sum(L) / batch_size(L)`; undoing broadcasting is `unbroadcast(g, x)`. A backward node
that sums over the batch what its op computes per sample is written `batch_sum(op(...))`.
"""
from __future__ import annotations

import keyword
import re
import unicodedata
from pathlib import Path

import numpy as np

from . import syntax as S
from .errors import NndslError
from .graph import arguments, attributes, topological_order
from .interpreter import needed, schedule, straight_line
from .ops import ATOM, REGISTRY, Form, KernelInfo, fmt_shape, paren, py_aligned

LANGS = ("nn", "latex", "python")
MAX_DEPTH = 4               # an inline expression nests at most this many ops; deeper ones get a name


# ---- which graph, which values -------------------------------------------------------------
class Listing:
    """The nodes to print, in order, and the roles of some: outputs ({node: name}), the loss."""

    def __init__(self, model, grad: bool):
        self.model = model
        self.grad = grad
        if grad:
            model.require_loss()
            if not model.params:
                raise NndslError("--grad needs a parameter to differentiate with respect to: "
                                 "the model declares none", filename=model.filename)
            graph, objective, grads = model.gradient_graph(tuple(model.params))
            targets = [objective, *grads.values()]
            keep = needed(graph, targets)
            order = topological_order(graph, keep)
            order.sort(key=lambda n: graph.nodes[n]["role"] == "backward")    # forward first: still topological
            self.outputs = {objective: "objective"}
            self.gradients = dict(grads)
        else:
            graph = model.graph
            order = topological_order(graph)
            self.outputs = {node: name for name, node in model.outputs.items()}
            self.gradients = {}
        self.graph = graph
        self.nodes = attributes(graph)
        # every input and parameter is declared, needed or not: the program keeps the model's interface
        leaves = sorted(n for n in graph if REGISTRY[self.nodes[n]["op"]].leaf and self.nodes[n]["role"] == "forward")
        self.order = leaves + [n for n in order if not REGISTRY[self.nodes[n]["op"]].leaf]
        self.loss = model.lowered.loss[1] if model.lowered.loss else None
        self.inside = set(self.order)


def info_of(graph, node, dtype=np.float64) -> KernelInfo:
    nodes = attributes(graph)
    attrs = nodes[node]
    args = arguments(graph, node)
    return KernelInfo(attrs["shape"], attrs["batched"], tuple(nodes[a]["shape"] for a in args),
                      tuple(nodes[a]["batched"] for a in args), attrs, np.dtype(dtype))


def batch_reduced(info: KernelInfo, op, lang: str) -> bool:
    """Its value is the sum over the batch of what its op's printed form computes per sample.
    Forms that take the batch layout into account sum it themselves: sum_to's, and the Python
    forms of the ops whose kernels reduce the batch (matmul, outer)."""
    handles = op.unbatched or op.printed.ref or op.batched_rule is not None or (lang == "python" and op.reduces_batch)
    return not info.batched and any(info.arg_batched) and not handles


def render(form, info: KernelInfo, operands: list) -> tuple:
    """(text, precedence) of a form applied to operands, each (text, precedence)."""
    if callable(form):
        return form(info, *operands)
    least = form.operands or (0,)

    def operand(i):
        return paren(*operands[i], least[min(i, len(least) - 1)])
    static = {k: info.attrs[k] for k in ("subscripts",) if k in info.attrs}
    if "{*}" in form.template:
        return form.template.replace("{*}", form.sep.join(operand(i) for i in range(len(operands)))), form.prec
    return form.template.format(*[operand(i) for i in range(len(operands))], **static), form.prec


# ---- names ---------------------------------------------------------------------------------
class Names:
    def __init__(self, taken):
        self.taken = set(taken)
        self.counters: dict = {}

    def claim(self, name: str) -> str:
        if name not in self.taken:
            self.taken.add(name)
            return name
        return self.fresh(name + "_")

    def fresh(self, prefix: str) -> str:
        while True:
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            name = f"{prefix}{self.counters[prefix]}"
            if name not in self.taken:
                self.taken.add(name)
                return name


class Plan:
    """Names, lines and inline expressions of a listing, for one language."""

    def __init__(self, listing: Listing, lang: str, every_step: bool = False):
        self.listing = listing
        self.lang = lang
        graph, nodes = listing.graph, listing.nodes
        self.args = {n: arguments(graph, n) for n in listing.order}
        self.refs = {}
        for node in listing.order:
            printed = REGISTRY[nodes[node]["op"]].printed
            if printed.ref:
                ref = self.find_ref(node)
                if ref is not None:
                    self.refs[node] = ref
        readers: dict = {}
        for node in listing.order:
            for a in self.args[node] + ([self.refs[node]] if node in self.refs else []):
                readers[a] = readers.get(a, 0) + 1
        self.readers = readers
        pinned = self.pinned_constants() if lang == "nn" else set()
        reserved = set(REGISTRY) | {"σ"} | set(keyword.kwlist) | {"np", "params", "inputs"}
        model_names = [nodes[n]["name"] for n in listing.order if nodes[n]["name"]]
        names = Names(reserved | set(model_names))
        self.names = {}
        for node in listing.order:
            attrs = nodes[node]
            if attrs["name"]:
                self.names[node] = attrs["name"]
        outputs = dict(listing.outputs)
        self.aliases = []                  # (output name, node) of a gradient that is another's too
        for param, node in listing.gradients.items():
            if node not in self.names and node not in outputs:
                outputs[node] = names.claim(f"dL_d{param}")
            else:
                self.aliases.append((names.claim(f"dL_d{param}"), node))
        self.outputs = outputs
        depth: dict = {}
        for node in listing.order:
            attrs = nodes[node]
            op = REGISTRY[attrs["op"]]
            if op.leaf or (attrs["op"] == "const" and not attrs["name"] and node not in outputs
                           and readers.get(node, 0) and node not in pinned):   # one nothing reads gets a line
                depth[node] = 0
                continue
            depth[node] = 1 + max([depth[a] for a in self.args[node] if a not in self.names] + [0])
            own = (attrs["name"] or node in outputs or node == listing.loss or every_step or node in pinned
                   or readers.get(node, 0) != 1 or depth[node] > MAX_DEPTH or node in self.refs.values()
                   or ("grad_of" in attrs and attrs["role"] == "backward"))
            if not own or node in self.names:
                continue
            if node in outputs:
                self.names[node] = outputs[node]
            elif "grad_of" in attrs and attrs["role"] == "backward":
                of = nodes[attrs["grad_of"]]
                named = of["name"] and attrs["grad_of"] != listing.loss   # not ∂L/∂L: L names the loss
                self.names[node] = names.claim(f"dL_d{of['name']}") if named else names.fresh("δ")
            elif op.printed.call_it:
                self.names[node] = names.claim(op.printed.call_it)
            else:
                self.names[node] = names.fresh("g" if attrs["role"] == "backward" else "u")
            depth[node] = 0

    def pinned_constants(self) -> set:
        """.nn: the forward constants that must be named to compile back to the same graph. Each
        literal in a .nn file is a constant node of its own, so a constant read at several places
        (a def parameter or a dim read twice) is named; and `-3` is the constant -3, so a
        constant that a negation reads (`-m`, m a dim) is named too."""
        nodes, graph = self.listing.nodes, self.listing.graph
        pinned = set()
        for node in self.listing.order:
            attrs = nodes[node]
            if attrs["op"] != "const" or attrs["role"] != "forward":
                continue
            reads = [r for r in graph.successors(node) if r in self.listing.inside and nodes[r]["role"] == "forward"]
            times = sum(len(graph.edges[node, r]["positions"]) for r in reads)
            if times > 1 or (attrs["shape"] == () and any(nodes[r]["op"] == "neg" for r in reads)):
                pinned.add(node)
        return pinned

    def find_ref(self, node):
        """A value of the node's shape and batch layout to write beside it (sum_to's target):
        the value whose gradient it is, else any earlier value of that layout."""
        listing = self.listing
        nodes, graph = listing.nodes, listing.graph
        want = (nodes[node]["shape"], nodes[node]["batched"])
        candidates = []
        if "grad_of" in nodes[node]:
            candidates.append(nodes[node]["grad_of"])
        for consumer in graph.successors(node):
            if "grad_of" in nodes[consumer]:
                candidates.append(nodes[consumer]["grad_of"])
        seen = set()
        for n in listing.order:
            if n == node:
                break
            seen.add(n)
            if nodes[n]["op"] != "const" and n not in candidates:
                candidates.append(n)
        for c in candidates:
            if c in listing.inside and (nodes[c]["shape"], nodes[c]["batched"]) == want and c != node:
                if c in seen or REGISTRY[nodes[c]["op"]].leaf or nodes[c]["role"] == "forward":
                    return c
        return None

    # ---- expressions ---------------------------------------------------------------------
    def expressions(self, name_of=None, literal=None):
        """{node: (text, precedence)} of every node, named nodes as their names."""
        listing, nodes, lang = self.listing, self.listing.nodes, self.lang
        name_of = name_of or (lambda n: n)
        literal = literal or {"nn": nn_literal, "latex": latex_literal, "python": python_literal}[lang]
        out: dict = {}
        inline: dict = {}
        for node in listing.order:
            attrs = nodes[node]
            op = REGISTRY[attrs["op"]]
            if op.leaf:
                inline[node] = (name_of(self.names[node]), ATOM)
                continue
            if attrs["op"] == "const":
                text = literal(attrs["value"])
            else:
                info = info_of(listing.graph, node)
                operands = [self.read(a, inline) for a in self.args[node]]
                # Elementwise operands broadcast per sample, as the kernels align them (`ops.aligned`);
                # a form written as a function (broadcast_like's) lays out its operands itself.
                if lang == "python" and op.elementwise and isinstance(op.printed.python, Form):
                    operands = py_aligned(info, operands)
                if node in self.refs:
                    operands.append(self.read(self.refs[node], inline))
                try:
                    text = render(getattr(op.printed, lang), info, operands)
                except LookupError:
                    raise NndslError(f"cannot write this {attrs['op']} node in {lang}: no value of its shape "
                                     f"{fmt_shape(attrs['shape'])} to write beside it") from None
                if batch_reduced(info, op, lang):
                    text = render(getattr(REGISTRY["batch_sum"].printed, lang), info, [text])
            out[node] = text if isinstance(text, tuple) else (text, 8)
            inline[node] = (name_of(self.names[node]), ATOM) if node in self.names else out[node]
        return out

    def read(self, node, inline):
        return inline[node]


# ---- literals -------------------------------------------------------------------------------
def number_text(v: float) -> str:
    v = float(v)
    if not np.isfinite(v):
        raise NndslError(f"the constant {v} has no spelling in a .nn file")
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def nested(value, one) -> str:
    value = np.asarray(value)
    if value.ndim == 0:
        return one(value)
    return "[" + ", ".join(nested(v, one) for v in value) + "]"


def nn_literal(value):
    value = np.asarray(value)
    text = nested(value, number_text)
    if value.ndim == 0:
        return text, 3 if text.startswith("-") else 8
    return text, 8


def python_literal(value):
    value = np.asarray(value)
    if value.ndim == 0:
        text = repr(float(value))
        return text, 3 if text.startswith("-") else ATOM
    return f"np.array({nested(value, lambda v: repr(float(v)))})", ATOM


def latex_literal(value):
    value = np.asarray(value)
    text = nested(value, number_text)
    if value.ndim == 0:
        return text, 3 if text.startswith("-") else 8
    return text.replace("[", "\\left[").replace("]", "\\right]"), 8


# ---- .nn -----------------------------------------------------------------------------------
def comment_for(attrs) -> str:
    if not attrs["span"]:
        return ""
    where = f"line {attrs['span'][0]}"
    if attrs.get("scope"):
        where += f", in {attrs['scope'].split('/')[-1]}()"
    return ("∂ of " if attrs["role"] == "backward" else "") + where


def statement_text(model, st) -> str:
    """A statement of the model's own source, as written."""
    lines = model.program.source.splitlines()
    span = st.span
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1:span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1:]] + lines[span.line:span.end_line - 1]
    return " ".join(parts + [lines[span.end_line - 1][:span.end_column - 1]])


def to_nn(model, grad: bool = False) -> str:
    from .fmt import format_source
    listing = Listing(model, grad)
    plan = Plan(listing, "nn")
    nodes = listing.nodes
    what = "the forward and backward pass" if grad else "the forward graph"
    lines = [f"# {Path(model.filename).name}: {what}, as nndsl compiled it (nndsl export --format nn"
             + (" --grad" if grad else "") + ")"]
    if grad:
        lines.append("# dL_dNAME is the gradient of the batch-mean loss `objective` with respect to NAME;")
        lines.append("# δ1, δ2, ... are gradients of unnamed values (docs/export.md)")
    if model.name:
        lines.append(f"model {model.name}")
    statements = {getattr(st, "name", None): st for st in model.program.statements
                  if isinstance(st, (S.InputStmt, S.ParamStmt))}
    texts = plan.expressions()
    body = []
    for node in listing.order:
        attrs = nodes[node]
        op = REGISTRY[attrs["op"]]
        if op.leaf:
            keyword_ = "input" if attrs["op"] == "input" else "param"
            line = f"{keyword_} {attrs['name']}{fmt_shape(attrs['shape']) if attrs['shape'] else ''}"
            st = statements.get(attrs["name"])
            if isinstance(st, S.ParamStmt) and st.init is not None:
                line += " = " + statement_text(model, st.init)
            lines.append(line)
            continue
        if node not in plan.names:
            continue
        name = plan.names[node]
        text = texts[node][0]
        if node == listing.loss:
            line = f"loss {name} = {text}"
        elif node in plan.outputs:
            line = f"output {name} = {text}"
        else:
            line = f"{name} = {text}"
        comment = comment_for(attrs)
        body.append(line + (f"  # {comment}" if comment else ""))
    lines += body
    for node, name in plan.outputs.items():
        if REGISTRY[nodes[node]["op"]].leaf:
            lines.append(f"output {name}")
    for name, node in plan.aliases:
        lines.append(f"output {name} = identity({plan.names[node]})")
    for st in model.program.statements:
        if isinstance(st, (S.DataInlineStmt, S.TrainStmt)):
            lines.append(statement_text(model, st))
        elif isinstance(st, S.DataFileStmt):
            lines.append(f"# data {st.path}: relative to {Path(model.filename).name}")
    return format_source("\n".join(lines) + "\n")


# ---- LaTeX ---------------------------------------------------------------------------------
GREEK = {unicodedata.lookup(f"GREEK SMALL LETTER {n}"): n.lower() for n in
         ("ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON", "ZETA", "ETA", "THETA", "IOTA", "KAPPA", "LAMDA", "MU",
          "NU", "XI", "PI", "RHO", "SIGMA", "TAU", "UPSILON", "PHI", "CHI", "PSI", "OMEGA")}
GREEK["λ"] = "lambda"


def latex_name(name: str) -> str:
    """W1 -> W_{1}, ŷ -> \\hat{y}, δ2 -> \\delta_{2}, dL_dW1 -> \\frac{\\partial L}{\\partial W_{1}}."""
    grad = re.fullmatch(r"dL_d(.+)", name)
    if grad:
        return f"\\frac{{\\partial L}}{{\\partial {latex_name(grad.group(1))}}}"
    base, _, sub = name.partition("_")
    match = re.fullmatch(r"(\D+?)(\d+)", base)
    if match and not sub:
        base, sub = match.groups()
    out = []
    for ch in unicodedata.normalize("NFD", base):
        if ch in GREEK or unicodedata.normalize("NFC", ch) in GREEK:
            out.append(f"\\{GREEK[unicodedata.normalize('NFC', ch)]} ")
        elif ch == "\u0302" and out:
            out[-1] = f"\\hat{{{out[-1].strip()}}}"
        elif ch.isascii() and (ch.isalnum()):
            out.append(ch)
        elif unicodedata.combining(ch):
            continue
        else:
            out.append(f"u{ord(ch):x}")
    text = "".join(out).strip()
    if len(base) > 1 and not match and base.isascii():
        text = f"\\mathrm{{{text}}}"
    if sub:
        text += "_{" + (sub if sub.isdigit() else "\\mathrm{" + sub + "}") + "}"
    return text


def latex_shape(attrs) -> str:
    shape = attrs["shape"]
    times = " \\times "
    return "\\mathbb{R}" + ("^{" + times.join(str(s) for s in shape) + "}" if shape else "")


def to_latex(model, grad: bool = True) -> str:
    listing = Listing(model, grad)
    plan = Plan(listing, "latex")
    nodes = listing.nodes
    texts = plan.expressions(name_of=latex_name)
    forward, backward = [], []
    for node in listing.order:
        attrs = nodes[node]
        if REGISTRY[attrs["op"]].leaf or node not in plan.names or texts[node][0] == latex_name(plan.names[node]):
            continue
        row = f"{latex_name(plan.names[node])} &= {texts[node][0]} && {latex_shape(attrs)} \\\\"
        (backward if attrs["role"] == "backward" else forward).append(row)
    title = Path(model.filename).name
    out = [f"% {title}: equations written by nndsl export --format latex" + (" --grad" if grad else ""),
           "% per-sample shapes in the right margin; B is the batch size and Σ_b sums over the samples"]
    leaves = [f"{latex_name(nodes[n]['name'])} \\in {latex_shape(nodes[n])}" for n in listing.order
              if REGISTRY[nodes[n]["op"]].leaf]
    out.append("% inputs and parameters: $" + ",\\ ".join(leaves) + "$")
    for heading, rows in (("forward pass", forward), ("backpropagation", backward)):
        if not rows:
            continue
        out += [f"% {heading}", "$$", "\\begin{aligned}"] + rows + ["\\end{aligned}", "$$"]
    return "\n".join(out) + "\n"


def latex_equations(text: str) -> list:
    """The equations of a to_latex text, one math string each (as mathtext and KaTeX take them)."""
    rows = []
    for line in text.splitlines():
        if "&=" in line:
            row = line.rstrip().removesuffix("\\\\").replace("&&", "\\qquad").replace("&", "")
            rows.append(row.strip())
        elif line.startswith("% inputs and parameters: $"):
            rows += line.split("$")[1].split(",\\ ")
    return rows


# ---- Python --------------------------------------------------------------------------------
PY_HELPERS = {
    "clamped_log": '''def clamped_log(x):
    """log, clamped at -100 (as torch.nn.BCELoss), so a saturated probability stays finite."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), -100.0)''',
    "pick": '''def pick(x, k):
    """x[..., k] for class indices k."""
    k = k.astype(np.intp)
    x, k = np.broadcast_to(x, np.broadcast_shapes(x.shape[:-1], k.shape) + x.shape[-1:]), k
    k = np.broadcast_to(k, x.shape[:-1])
    return np.take_along_axis(x, k[..., None], axis=-1)[..., 0]''',
    "one_hot": '''def one_hot(k, ref):
    """Rows with 1 at class k, as wide as ref's last axis."""
    rows = (k.astype(np.intp)[..., None] == np.arange(ref.shape[-1])) * 1.0
    return np.broadcast_to(rows, np.broadcast_shapes(rows.shape, ref.shape))''',
    "scatter": '''def scatter(g, shape, key):
    """Zeros of `shape` with g at `key`: the gradient of an index."""
    out = np.zeros(shape)
    out[key] = g
    return out''',
}


def python_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def python_function(listing: Listing, plan: Plan, header: str, targets: list, result) -> tuple[list, set]:
    """A function computing `targets` (nodes), one line per step, in the order the interpreter's
    schedule runs them; `result(names)` is the returned expression."""
    nodes = listing.nodes
    steps_plan = schedule(listing.graph, targets, np.float64)
    texts = plan.expressions(name_of=python_name)
    steps, helpers = [], set()
    for node, slot in sorted(steps_plan.leaves.items(), key=lambda kv: kv[1]):
        attrs = nodes[node]
        source = "inputs" if attrs["op"] == "input" else "params"
        steps.append((python_name(attrs["name"]), f"{source}[{attrs['name']!r}]", (), ""))
    by_slot = {slot: node for node, slot in steps_plan.slots.items()}
    # a constant gets a line when it is read by name (a binding, an output); others are literals
    ran = sorted([by_slot[slot] for slot, _ in steps_plan.constants if by_slot[slot] in plan.names],
                 key=steps_plan.slots.get) + [node for *_, node in steps_plan.steps]
    for node in ran:
        attrs = nodes[node]
        helpers.update(REGISTRY[attrs["op"]].printed.helpers)
        comment = comment_for(attrs)
        steps.append((python_name(plan.names[node]), texts[node][0], (), comment))
    names = [python_name(plan.names[n]) if n in plan.names else texts[n][0] for n in targets]
    return straight_line(header, steps, result(names)), helpers


def to_python(model, grad: bool = True) -> str:
    title = Path(model.filename).name
    forward_listing = Listing(model, False)
    forward_plan = Plan(forward_listing, "python", every_step=True)
    outs = list(model.outputs.items())
    lines, helpers = python_function(
        forward_listing, forward_plan, "def forward(params, **inputs):", [n for _, n in outs],
        lambda names: "{" + ", ".join(f"{k!r}: {v}" for (k, _), v in zip(outs, names)) + "}")
    functions = ['\n'.join(lines)]
    if grad:
        listing = Listing(model, True)
        plan = Plan(listing, "python", every_step=True)
        (objective,) = listing.outputs
        params = list(listing.gradients)
        lines, more = python_function(
            listing, plan, "def grad(params, **inputs):", [objective] + [listing.gradients[p] for p in params],
            lambda names: f"float({names[0]}), {{" + ", ".join(f"{p!r}: {v}" for p, v in zip(params, names[1:])) + "}")
        functions.append('\n'.join(lines))
        helpers |= more
    doc = [f'"""{title} as NumPy, written by nndsl export --format python{" --grad" if grad else ""}.',
           "",
           "`params` maps each parameter name to its array; inputs are keywords, each with a leading",
           "batch axis (one sample is a batch of one). forward() returns the outputs by name"
           + (";\ngrad() the batch-mean loss and its gradient for every parameter." if grad else "."),
           "Each step's comment is the line of the .nn source it comes from.", '"""']
    parts = ["\n".join(doc), "import numpy as np"]
    parts += [PY_HELPERS[h] for h in sorted(helpers)]
    parts += functions
    return "\n\n\n".join(parts) + "\n"


def export(model, lang: str, grad: bool = False) -> str:
    if lang == "nn":
        return to_nn(model, grad)
    if lang == "latex":
        return to_latex(model, grad)
    return to_python(model, grad)
