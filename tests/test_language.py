"""The language of SPEC sections 1-5: syntax, names, shapes, batch semantics, losses, data."""
from __future__ import annotations

import numpy as np
import pytest

import nndsl
from nndsl.parser import parse

DECLS = """\
dim n = 3
input x[n]
param W[n, n]
param W1[4, n]
param W2[4, 4]
param W3[4, 4]
param W4[4, 4]
param W5[2, 4]
param w[n]
param b
"""

SEED_FORMULAS = [
    "f = W x",
    "f = W2 max(0, W1 x)",
    "f = W3 max(0, W2 max(0, W1 x))",
    "f = W4 tanh(W3 max(0, W2 max(0, W1 x)))",
    "f = W5 σ(W4 tanh(W3 max(0, W2 max(0, W1 x))))",
    "f = W3 · (W2 · (W1 · x))",
    "f = step(w · x + b)",
    "f = sign(w · x + b)",
]


def relu(z):
    return np.maximum(z, 0)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# The same formulas written with NumPy on a batch of rows x [B, n] (a row times Wᵀ is W x).
SEED_REFERENCES = [
    lambda p, x: x @ p["W"].T,
    lambda p, x: relu(x @ p["W1"].T) @ p["W2"].T,
    lambda p, x: relu(relu(x @ p["W1"].T) @ p["W2"].T) @ p["W3"].T,
    lambda p, x: np.tanh(relu(relu(x @ p["W1"].T) @ p["W2"].T) @ p["W3"].T) @ p["W4"].T,
    lambda p, x: sigmoid(np.tanh(relu(relu(x @ p["W1"].T) @ p["W2"].T) @ p["W3"].T) @ p["W4"].T) @ p["W5"].T,
    lambda p, x: x @ (p["W3"] @ p["W2"] @ p["W1"]).T,
    lambda p, x: (x @ p["w"] + p["b"] > 0).astype(float),
    lambda p, x: np.sign(x @ p["w"] + p["b"]),
]


@pytest.mark.parametrize("formula, reference", list(zip(SEED_FORMULAS, SEED_REFERENCES)), ids=SEED_FORMULAS)
def test_seed_formulas_compile_as_written(formula, reference):
    model = nndsl.compile(DECLS + formula + "\n", dtype="float64")
    rng = np.random.default_rng(0)
    # random values everywhere (w and b start at zero, which would make step and sign constant)
    params = {name: rng.normal(size=shape) for name, shape in model.param_shapes().items()}
    x = rng.normal(size=(5, 3))
    out = model.run(params, x=x)["f"]
    expected = reference(params, x)
    assert out.shape == expected.shape and out.shape[0] == 5
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    if "step" in formula or "sign" in formula:           # both sides of the threshold are seen
        assert len(set(expected.tolist())) == 2


def test_seed_mlp_matches_numpy():
    model = nndsl.compile(DECLS + "f = W5 σ(W4 tanh(W3 max(0, W2 max(0, W1 x))))\n", dtype="float64")
    p = model.init(3)
    x = np.random.default_rng(0).normal(size=(6, 3))
    h = np.maximum(0, x @ p["W1"].T)
    h = np.maximum(0, h @ p["W2"].T)
    h = np.tanh(h @ p["W3"].T)
    h = 1 / (1 + np.exp(-(h @ p["W4"].T)))
    np.testing.assert_allclose(model.run(p, x=x)["f"], h @ p["W5"].T, rtol=1e-12)


def test_still_linear_on_a_batch():
    model = nndsl.compile(DECLS + "f = W3 · (W2 · (W1 · x))\n", dtype="float64")
    p = model.init(1)
    x = np.random.default_rng(1).normal(size=(7, 3))
    W4 = p["W3"] @ p["W2"] @ p["W1"]
    np.testing.assert_allclose(model.run(p, x=x)["f"], x @ W4.T, rtol=0, atol=1e-10)


def expression_of(source: str):
    return parse(source).statements[-1].expr


def shape_of_tree(e) -> str:
    from nndsl import syntax as S
    if isinstance(e, S.Binary):
        return f"({shape_of_tree(e.left)} {e.op} {shape_of_tree(e.right)})"
    if isinstance(e, S.Unary):
        return f"(-{shape_of_tree(e.operand)})"
    if isinstance(e, S.Call):
        return f"{e.func}(" + ", ".join(shape_of_tree(a) for a in e.args) + ")"
    if isinstance(e, S.Name):
        return e.id
    return e.text


@pytest.mark.parametrize("source, tree", [
    ("y = W2 W1 x", "(W2 matmul (W1 matmul x))"),
    ("y = a + b * c", "(a add (b mul c))"),
    ("y = a - b - c", "((a sub b) sub c)"),
    ("y = -a b", "(-(a matmul b))"),
    ("y = a b ^ 2", "(a matmul (b pow 2))"),
    ("y = a ^ b ^ c", "(a pow (b pow c))"),
    ("y = a ** -2", "(a pow (-2))"),
    ("y = 0.5 (a − b)^2", "(0.5 matmul ((a sub b) pow 2))"),
    ("y = a @ b · c ∙ d ⋅ e", "(a matmul (b matmul (c matmul (d matmul e))))"),
    ("y = 2 a * b", "((2 matmul a) mul b)"),
    ("y = a / b c", "(a div (b matmul c))"),
    ("y = max(0,\n  W x)", "max(0, (W matmul x))"),
    ("y = W(z)", "W(z)"),
])
def test_precedence_and_associativity(source, tree):
    assert shape_of_tree(expression_of(source)) == tree


def test_names_are_nfkc_normalised_and_dot_is_an_operator():
    model = nndsl.compile("input 𝒙[2]\nparam 𝒘[2] = [1, 2]\nŷ = 𝒘 ∙ 𝒙\nθ₁ = ŷ·ŷ\n", dtype="float64")
    assert set(model.inputs) == {"x"} and set(model.params) == {"w"}
    out = model.run(None, x=[3.0, 4.0])
    assert out["θ1"] == 121.0


def test_comments_semicolons_and_continuation():
    model = nndsl.compile("input x  # the input\nparam a = 2; param b = 1\ny = max(a x,\n        b)  # done\n")
    assert model.run(None, x=np.array([-1.0, 3.0]))["y"].tolist() == [1.0, 6.0]


def test_def_is_inlined_and_scoped():
    model = nndsl.compile("def layer(W, z) = tanh(W z)\ninput x[2]\nparam A[2, 2]\nparam B[2, 2]\n"
                          "y = layer(B, layer(A, x))\n", dtype="float64")
    scopes = {d["scope"] for _, d in model.graph.nodes(data=True) if d["op"] == "tanh"}
    assert scopes == {"layer"}
    p = model.init(0)
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(model.run(p, x=x)["y"], np.tanh(p["B"] @ np.tanh(p["A"] @ x)))


def test_scalars_scale_and_dims_are_numbers():
    model = nndsl.compile("dim n = 4\ninput x[n]\noutput y = sum(x) / n\noutput z = 2 x\n", dtype="float64")
    out = model.run(None, x=np.arange(4.0))
    assert list(out) == ["y", "z"]
    assert out["y"] == 1.5                          # (0 + 1 + 2 + 3) / 4: the dim is the number 4
    assert out["z"].tolist() == [0, 2, 4, 6]        # a scalar times a vector scales it
    wider = nndsl.compile("dim n = 4\ninput x[n]\noutput y = sum(x) / n\n", dims={"n": 5}, dtype="float64")
    assert wider.run(None, x=np.arange(5.0))["y"] == 2.0     # --set n=5 changes the number too


def test_outputs_default_to_the_last_binding_and_can_be_declared():
    m = nndsl.compile("input x\na = 2 x\nb = 3 x\n")
    assert list(m.outputs) == ["b"]
    m = nndsl.compile("input x\na = 2 x\noutput a\nb = 3 x\noutput c = a + b\n")
    assert list(m.outputs) == ["a", "c"]
    assert m.run(None, x=1.0) == {"a": 2.0, "c": 5.0}


def test_set_overrides_dims():
    m = nndsl.compile("dim h = 3\ninput x[h]\nparam W[h, h]\ny = W x\n", dims={"h": 5})
    assert m.shape("W") == (5, 5)


# ---- batch semantics --------------------------------------------------------------------------
def test_single_sample_has_no_batch_axis_and_batch_keeps_it():
    m = nndsl.compile("input x[2]\ninput t\nparam w[2] = [1, 1]\ny = w · x\nloss L = mse(y, t)\n")
    one = m.run(None, x=[1.0, 2.0], t=0.0)
    assert one["y"].shape == () and one["L"].shape == ()
    many = m.run(None, x=np.ones((5, 2)), t=np.zeros(5))
    assert many["y"].shape == (5,) and many["L"].shape == (5,)


def test_per_sample_scalars_broadcast_against_vectors_within_each_sample():
    m = nndsl.compile("input s\ninput v[3]\ny = s + v\n", dtype="float64")
    s = np.array([0.0, 10.0])
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(m.run(None, s=s, v=v)["y"], s[:, None] + v)


def test_batch_mean_loss_and_the_1d_backprop_example():
    m = nndsl.compile("input x\ninput y\nparam w = 1\nŷ = x · w\nloss L = 0.5 (ŷ − y)^2\n", dtype="float64")
    loss, grads = m.grad(None, x=2.0, y=1.0)
    assert loss == 0.5 and grads["w"] == 2.0
    w = 1.0 - 0.1 * grads["w"]
    assert w == pytest.approx(0.8, abs=1e-15)


def test_dtype_float32_by_default_and_float64_on_request():
    src = "input x[2]\nparam W[2, 2]\ny = W x\n"
    assert nndsl.compile(src).run(None, x=[1, 2])["y"].dtype == np.float32
    assert nndsl.compile(src, dtype="float64").run(None, x=[1, 2])["y"].dtype == np.float64


# ---- losses: published values ------------------------------------------------------------
LOSS_MODEL = "input p[{n}]\ninput t[{n}]\nloss L = {loss}(p, t)\n"


@pytest.mark.parametrize("loss, p, t, expected", [
    # Keras documents each of these values for the same inputs.
    ("bce", [[0.6, 0.4], [0.4, 0.6]], [[0, 1], [0, 0]], 0.815),
    ("mse", [[1.0, 1.0], [1.0, 0.0]], [[0, 1], [0, 0]], 0.5),
    ("mae", [[1.0, 1.0], [1.0, 0.0]], [[0, 1], [0, 0]], 0.5),
    ("cross_entropy", [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], [[0, 1, 0], [0, 0, 1]], 1.177),
    ("hinge", [[0.6, 0.4], [0.4, 0.6]], [[-1, 1], [-1, -1]], 1.3),
    ("squared_hinge", [[0.6, 0.4], [0.4, 0.6]], [[-1, 1], [-1, -1]], 1.86),
    # By hand: max(0, -t y) for y = (0.5, -2, 0), t = (1, 1, -1) is (0, 2, 0).
    ("perceptron", [[0.5, -2.0, 0.0]], [[1, 1, -1]], 2 / 3),
])
def test_published_loss_values(loss, p, t, expected):
    m = nndsl.compile(LOSS_MODEL.format(n=len(p[0]), loss=loss), dtype="float64")
    assert m.loss(None, p=np.array(p), t=np.array(t, dtype=float)) == pytest.approx(expected, abs=5e-4)


def test_sparse_cross_entropy_published_value():
    m = nndsl.compile("input p[3]\ninput k\nloss L = sparse_cross_entropy(p, k)\n", dtype="float64")
    p = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    assert m.loss(None, p=p, k=np.array([1.0, 2.0])) == pytest.approx(1.177, abs=5e-4)


def test_class_index_out_of_range_is_a_located_error():
    m = nndsl.compile("input p[3]\ninput k\nloss L = sparse_cross_entropy(p, k)\n", filename="m.nn")
    with pytest.raises(nndsl.NndslError) as info:
        m.loss(None, p=np.full((2, 3), 1 / 3), k=np.array([1.0, 3.0]))
    assert info.value.render().startswith("m.nn:3:10: error: class index 3 is not an integer in [0, 3)")


@pytest.mark.parametrize("source, fused", [
    ("input z[3]\ninput t[3]\nloss L = bce(sigmoid(z), t)\n", "bce_logits"),
    ("input z[3]\ninput t[3]\nloss L = cross_entropy(softmax(z), t)\n", "cross_entropy_logits"),
    ("input z[3]\ninput k\nloss L = sparse_cross_entropy(softmax(z), k)\n", "nll"),
    ("input z[3]\ny = log(softmax(z))\n", "log_softmax"),
    ("input z[3]\ny = log(σ(z))\n", "log_sigmoid"),
])
def test_stable_rewrites(source, fused):
    m = nndsl.compile(source, dtype="float64")
    ops = {d["op"] for _, d in m.graph.nodes(data=True)}
    assert fused in ops and not {"sigmoid", "softmax"} & ops


def test_rewrite_keeps_a_producer_that_is_still_used():
    m = nndsl.compile("input z\ninput t\np = sigmoid(z)\noutput p\nloss L = bce(p, t)\n", dtype="float64")
    ops = [d["op"] for _, d in m.graph.nodes(data=True)]
    assert "sigmoid" in ops and "bce_logits" in ops
    out = m.run(None, z=1e4, t=0.0)
    assert out["p"] == 1.0 and out["L"] == pytest.approx(1e4)


def cross_entropy_by_torch(W, x, k, extra=None):
    """The batch-mean of -log_softmax(W x)[k] (+ extra(log_softmax)) and its gradient in W, by torch."""
    import torch
    Wt = torch.tensor(W, requires_grad=True)
    lp = torch.log_softmax(torch.tensor(x) @ Wt.T, -1)
    loss = torch.nn.functional.nll_loss(lp, torch.tensor(k).long())
    if extra is not None:
        loss = loss + extra(lp)
    loss.backward()
    return loss.item(), Wt.grad.numpy()


def test_the_sparse_cross_entropy_gradient_reads_the_forward_log_softmax():
    """sparse_cross_entropy(softmax(z), k) is nll(log_softmax(z), k); its gradient is one op,
    exp(lp) − onehot(k), reading the forward pass's log_softmax: no softmax is computed again."""
    m = nndsl.compile("input x[3]\ninput k\nparam W[4, 3]\nloss L = sparse_cross_entropy(softmax(W x), k)\n",
                      dtype="float64")
    rng = np.random.default_rng(0)
    W, x, k = rng.standard_normal((4, 3)), rng.standard_normal((6, 3)), np.array([0.0, 1, 2, 3, 3, 1])
    loss, grads = m.grad({"W": W}, x=x, k=k)
    graph = m._grad_graphs[("W",)][0]
    ops = {n: d["op"] for n, d in graph.nodes(data=True)}
    (lp,) = [n for n, op in ops.items() if op == "log_softmax"]
    (fused,) = [n for n, op in ops.items() if op == "nll_log_softmax_grad"]
    assert graph.nodes[lp]["role"] == "forward" and lp in graph.pred[fused]
    assert not {"softmax", "exp", "sum_last", "nll_grad"} & set(ops.values())
    expected_loss, expected = cross_entropy_by_torch(W, x, k)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W"], expected, rtol=1e-12)


@pytest.mark.parametrize("source, extra", [
    # the softmax is an output too: it stays, and a log_softmax is added for the loss
    ("input x[3]\ninput k\nparam W[4, 3]\noutput p = softmax(W x)\nloss L = sparse_cross_entropy(p, k)\n", None),
    # the log_softmax is read twice: its gradient is the general rule's, of the two summed
    ("input x[3]\ninput k\nparam W[4, 3]\nlp = log_softmax(W x)\nloss L = nll(lp, k) + 0.5 * sum(lp)\n",
     lambda lp: 0.5 * lp.sum(-1).mean()),
])
def test_nll_of_a_log_softmax_read_elsewhere(source, extra):
    m = nndsl.compile(source, dtype="float64")
    rng = np.random.default_rng(1)
    W, x, k = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), np.array([3.0, 1, 0, 2, 2])
    loss, grads = m.grad({"W": W}, x=x, k=k)
    expected_loss, expected = cross_entropy_by_torch(W, x, k, extra)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W"], expected, rtol=1e-12)
    ops = [d["op"] for _, d in m.graph.nodes(data=True)]
    assert "nll" in ops and ops.count("log_softmax") == 1
    if extra is None:
        assert "softmax" in ops
        out = m.run({"W": W}, x=x, k=k)
        np.testing.assert_allclose(out["p"].sum(-1), 1.0)


# ---- initialisation ------------------------------------------------------------------------
def test_initialisers_are_reproducible_and_follow_their_laws():
    m = nndsl.compile("param A[200, 300] = xavier\nparam H[300, 200] = he\nparam N[1000] = normal(0.1)\n"
                      "param U[1000] = uniform(-1, 3)\nparam Z[3]\nparam O[2, 2] = ones\nparam V[2] = [1, 2]\n"
                      "param D[4, 4]\n", dtype="float64")
    p, q = m.init(7), m.init(7)
    assert all(np.array_equal(p[k], q[k]) for k in p)
    assert not np.array_equal(p["A"], m.init(8)["A"])
    assert np.abs(p["A"]).max() <= np.sqrt(6 / 500) and p["A"].std() == pytest.approx(np.sqrt(2 / 500), rel=0.05)
    assert p["H"].std() == pytest.approx(np.sqrt(2 / 200), rel=0.05)
    assert p["N"].std() == pytest.approx(0.1, rel=0.1)
    assert p["U"].min() >= -1 and p["U"].max() <= 3
    assert p["Z"].tolist() == [0, 0, 0] and p["O"].tolist() == [[1, 1], [1, 1]] and p["V"].tolist() == [1, 2]
    assert np.abs(p["D"]).max() <= np.sqrt(6 / 8) and np.abs(p["D"]).max() > 0


def test_adding_a_parameter_does_not_change_the_others():
    a = nndsl.compile("param W[3, 3]\n").init(0)["W"]
    b = nndsl.compile("param V[5, 5]\nparam W[3, 3]\n").init(0)["W"]
    np.testing.assert_array_equal(a, b)


# ---- data ----------------------------------------------------------------------------------
def test_inline_data_and_data_files(tmp_path):
    (tmp_path / "d.csv").write_text("x[0],x[1],t\n1,2,0\n3,4,1\n")
    np.savez(tmp_path / "d.npz", x=np.array([[1.0, 2.0]]), t=np.array([5.0]))
    src = 'input x[2]\ninput t\ndata "d.csv"\ny = sum(x) + t\n'
    (tmp_path / "m.nn").write_text(src)
    m = nndsl.load(tmp_path / "m.nn", dtype="float64")
    assert m.run(None, **m.default_data())["y"].tolist() == [3.0, 8.0]
    assert m.run(None, **m.read_data(tmp_path / "d.npz"))["y"].tolist() == [8.0]
    m2 = nndsl.compile("input x[2]\ndata x = [[1, 2], [3, 4]]\ny = sum(x)\n", dtype="float64")
    assert m2.run(None, **m2.default_data())["y"].tolist() == [3.0, 7.0]


def test_values_on_the_command_line(tmp_path):
    m = nndsl.compile("input x[2, 2]\ny = sum(x)\n", dtype="float64")
    np.save(tmp_path / "x.npy", np.eye(2))
    (tmp_path / "x.csv").write_text("1,2,3,4\n5,6,7,8\n")
    assert m.parse_value("x", "[[0, 1], [1, -0.5]]").tolist() == [[0, 1], [1, -0.5]]
    assert m.parse_value("x", str(tmp_path / "x.npy")).tolist() == [[1, 0], [0, 1]]
    assert m.parse_value("x", str(tmp_path / "x.csv")).tolist() == [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
