"""Compiling in linear time: a chain of thousands of layers compiles and differentiates, and
the shortcuts taken for speed give what the slow ways gave (networkx's topological order, Lark's
parse trees, the garbage collector's state). bench/compile_time.py measures the time."""
from __future__ import annotations

import gc
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark

import nndsl
from nndsl.graph import topological_order
from nndsl.parser import NAMED_TERMINALS, grammar_text


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from compile_time import chain  # noqa: E402  (the model bench/compile_time.py times)


def test_a_5000_layer_chain_compiles_and_differentiates():
    n = 5000
    model = nndsl.compile(chain(n), dtype="float64")
    rng = np.random.default_rng(0)
    params = {f"W{i}": 1.2 * np.eye(4) + rng.normal(0, 0.05, (4, 4)) for i in range(n)}   # keeps a signal
    x = np.array([[1.0, 0.5, -0.5, -1.0], [0.5, 0.5, 0.5, 0.5]])
    loss, grads = model.grad(params, x=x)
    # by hand: forward through the chain, then back, one weight gradient per layer
    hs = [x]
    for i in range(n):
        hs.append(np.tanh(hs[-1] @ params[f"W{i}"].T))
    g = np.ones_like(x) / len(x)                  # d(batch mean of sum(h))/dh
    expected = {}
    for i in range(n - 1, -1, -1):
        g = g * (1 - hs[i + 1] ** 2)
        expected[f"W{i}"] = g.T @ hs[i]
        g = g @ params[f"W{i}"]
    assert loss == pytest.approx(np.mean(np.sum(hs[-1], axis=1)), rel=1e-12)
    assert list(grads) == list(expected)[::-1]
    for name, value in expected.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-9, atol=1e-300, err_msg=name)
    assert np.abs(grads[f"W{n - 1}"]).max() > 1e-3


@st.composite
def dags(draw):
    """A DAG with node ids in no particular order, nodes and edges added in shuffled orders,
    and a set of its nodes: any set, or one closed under predecessors (as the passes use)."""
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.integers(0, 300), min_size=n, max_size=n, unique=True))
    edges = [(ids[i], ids[j]) for i, j in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
             if i < j]
    graph = nx.DiGraph()
    graph.add_nodes_from(draw(st.permutations(ids)))
    graph.add_edges_from(draw(st.permutations(edges)))
    nodes = set(draw(st.lists(st.sampled_from(ids))))
    if draw(st.booleans()):
        nodes = set().union(*[nx.ancestors(graph, t) | {t} for t in nodes])
    return graph, nodes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_topological_order_is_networkx_order(case):
    """The backward graph's node ids follow this order, so it must be networkx's exactly."""
    graph, nodes = case
    assert topological_order(graph, nodes) == list(nx.topological_sort(graph.subgraph(nodes)))
    assert topological_order(graph) == list(nx.topological_sort(graph))


def test_rule_builders_receive_the_tokens_lark_trees_keep():
    """The parser builds syntax nodes while it parses, from every token; a builder receives the
    tokens a Lark parse tree keeps (named terminals), the others only delimit the rule's span."""
    trees = Lark(grammar_text(), parser="lalr", start=["start", "value", "flag_value"], maybe_placeholders=True)
    terminals = {symbol for rule in trees.rules for symbol in rule.expansion if symbol.is_term}
    assert {s.name for s in terminals if not s.filter_out} == NAMED_TERMINALS - {"COMMENT"}
    assert not {s.name for s in terminals if s.filter_out} & NAMED_TERMINALS


@pytest.mark.parametrize("frozen", [False, True])
def test_compiling_leaves_frozen_objects_frozen(frozen):
    """What a section built goes to the oldest generation through gc.freeze and gc.unfreeze,
    which would unfreeze what someone else froze: then the young generations are collected."""
    sentinel = [object()]
    if frozen:
        gc.freeze()
    try:
        model = nndsl.compile(chain(300))               # enough objects for the collector to start
        model.grad(None, x=np.ones(4))
        assert any(o is sentinel for o in gc.get_objects()) is not frozen
        assert gc.get_freeze_count() > 0 if frozen else gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("enabled", [True, False])
def test_compiling_leaves_the_garbage_collector_as_it_was(enabled):
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        model = nndsl.compile(chain(3))
        model.grad(None, x=np.ones(4))
        model.hvp(None, model.init(1), x=np.ones(4))
        assert gc.isenabled() is enabled
        with pytest.raises(nndsl.NndslError):
            nndsl.compile(chain(3) + "y = W0 W0 W0 (\n")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
