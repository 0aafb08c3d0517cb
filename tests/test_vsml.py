"""VSML specifics: reference sizes, feedback reaches the connections, bounded logits, random initial state,
and the reference implementation's choices as options (each checked for what it does, not just that it runs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from learner_testing import SPEC, feedback, init, trees_equal

from metalearn.learners import VSML, Feedback, TaskSpec, learner_sizes, step_flops
from metalearn.learners import moments


def test_reference_sizes_on_mnist_shapes():
    """REFERENCES.md: ~2.4k meta-parameters (LSTM 2,112 + heads 272) driving ~251k state floats on 784->10."""
    sizes = learner_sizes(VSML(), TaskSpec(784, 10))
    assert sizes.algorithm == 2112 + 272 + 32  # + the learned initial state (h, c)
    assert sizes.state == 784 * 10 * 32 + 784 * 8  # + the remembered forward messages


def test_state_depends_on_error_and_label():
    learner = VSML()
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    a, _ = learner.step(meta, state, x, feedback(1))
    b, _ = learner.step(meta, state, x, feedback(4))
    assert not np.allclose(a[-1]["h"], b[-1]["h"])
    no_label = VSML(use_label=False)  # the reference's feed_label: False
    c, logits_c = no_label.step(meta, state, x, feedback(1))
    d, logits_d = no_label.step(meta, state, x, feedback(1)._replace(label=jnp.zeros(SPEC.num_classes)))
    assert trees_equal(c, d) and np.array_equal(logits_c, logits_d)  # only the error reaches the network


def test_hidden_layers_pass_messages_both_ways():
    learner = VSML(hidden=(6,))
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    a, _ = learner.step(meta, state, x, feedback(1))
    b, _ = learner.step(meta, state, x, feedback(4))
    assert not np.allclose(a[0]["h"], b[0]["h"])  # the error reached the first layer through the hidden one
    _, logits_a = learner.step(meta, state, x, feedback(1))
    _, logits_b = learner.step(meta, state, 2 * x, feedback(1))
    assert not np.allclose(logits_a, logits_b)  # the input reached the output through the hidden one


def test_logits_are_bounded():
    learner = VSML(bound=3.0)
    meta, state = init(learner)
    meta = jax.tree.map(lambda p: 50.0 * p, meta)
    _, logits = learner.step(meta, state, 10 * jnp.ones(SPEC.input_size), feedback(0))
    assert np.all(np.abs(logits) <= 3.0)


def test_initial_state_is_per_connection_random():
    learner = VSML(init_noise=0.5)
    meta, state = init(learner)
    h = state[0]["h"]
    assert h.shape == (SPEC.input_size, SPEC.num_classes, 16)
    assert np.std(np.asarray(h)) == pytest.approx(0.5, rel=0.2)
    assert not np.allclose(h, init(learner, seed=3)[1][0]["h"])


def test_per_layer_parameters_and_the_backward_ablation():
    shared, per_layer = VSML(hidden=(6,)), VSML(hidden=(6,), per_layer=True)
    assert learner_sizes(per_layer, SPEC).algorithm == 2 * learner_sizes(shared, SPEC).algorithm
    meta, state = init(shared)
    x = jnp.ones(SPEC.input_size)
    a, logits_a = shared.step(meta, state, x, feedback(1))
    b, logits_b = per_layer.step([meta, meta], state, x, feedback(1))  # equal layers: the shared learner
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-6)
    c, logits_c = per_layer.step([meta, jax.tree.map(lambda p: p + 0.1, meta)], state, x, feedback(1))
    assert not np.allclose(logits_a, logits_c)
    no_backward = VSML(hidden=(6,), backward=False)
    meta, state = init(no_backward)
    c, _ = no_backward.step(meta, state, x, feedback(1))
    d, _ = no_backward.step(meta, state, x, feedback(4))
    np.testing.assert_array_equal(c[0]["h"], d[0]["h"])  # the error never reaches the first layer
    assert not np.allclose(c[1]["h"], d[1]["h"])


def test_tanh_form_gates_are_the_textbook_lstm_cell():
    """The fast gate form (one tanh over all gates) computes sigmoid gates: compare with jax.nn.sigmoid."""
    learner = VSML(ticks=3)
    meta, state = init(learner)
    layer, fwd_in = state[-1], jax.random.normal(jax.random.key(1), (SPEC.input_size, learner.msg_size))
    bwd_in = jax.random.normal(jax.random.key(2), (SPEC.num_classes, learner.msg_size))
    h, c = layer["h"], layer["c"]
    drive = (fwd_in @ meta["w_fwd"])[:, None] + (bwd_in @ meta["w_bwd"])[None] + meta["b"]
    for _ in range(learner.ticks):
        i, f, g, o = jnp.split(drive + h @ meta["w_h"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
    fast = learner._update(learner._layer_params(meta, 0, SPEC.num_classes), layer, fwd_in, bwd_in)
    np.testing.assert_allclose(fast["h"], h, atol=1e-6)
    np.testing.assert_allclose(fast["c"], c, atol=1e-6)


@pytest.mark.parametrize("groups", [2, 3, 4, 12, 60])
@pytest.mark.parametrize("shared_base", [False, True])
def test_groups_start_as_plain_vsml(groups, shared_base):
    """Every group is initialised with the same parameters, so any G computes what G = 1 computes."""
    spec = TaskSpec(12, 5)
    hidden = (6,) if groups in (2, 3) else ()  # 12 x 6 and 6 x 5 connections: G must divide both
    plain, grouped = VSML(hidden=hidden), VSML(hidden=hidden, groups=groups, shared_base=shared_base)
    key = jax.random.key(0)
    meta_1, meta_g = plain.init_meta_params(key, spec), grouped.init_meta_params(key, spec)
    sets = groups + shared_base  # with a shared base: the base and one offset per group
    assert learner_sizes(grouped, spec).algorithm == sets * learner_sizes(plain, spec).algorithm
    s1, sg = plain.init_state(meta_1, key, spec), grouped.init_state(meta_g, key, spec)
    for t in range(3):
        x = jax.random.normal(jax.random.key(t), (12,))
        s1, l1 = plain.step(meta_1, s1, x, feedback(t))
        sg, lg = grouped.step(meta_g, sg, x, feedback(t))
        np.testing.assert_allclose(lg, l1, rtol=1e-5, atol=1e-6)


def test_each_group_owns_its_block_of_connections():
    """On a 12 x 5 grid G = 15 is 5 output units x 3 blocks of 4 inputs: changing group g's LSTM changes
    only the connections of block g in the first forward pass."""
    spec = TaskSpec(12, 5)
    learner = VSML(groups=15)
    meta = learner.init_meta_params(jax.random.key(0), spec)
    state = learner.init_state(meta, jax.random.key(1), spec)
    x = jax.random.normal(jax.random.key(2), (12,))
    base, _ = learner.step(meta, state, x, feedback(0))
    changed = {**meta, "w_h": meta["w_h"].at[7].add(0.5)}  # group 7 = input block 7 // 5 = 1, output unit 7 % 5 = 2
    after, _ = learner.step(changed, state, x, feedback(0))
    differs = np.abs(np.asarray(after[0]["h"] - base[0]["h"])).max(axis=-1) > 0
    expected = np.zeros((12, 5), bool)
    expected[4:8, 2] = True
    np.testing.assert_array_equal(differs, expected)


def test_a_shared_base_moves_every_group_and_an_offset_only_its_own():
    spec = TaskSpec(12, 5)
    learner = VSML(groups=15, shared_base=True)
    meta = learner.init_meta_params(jax.random.key(0), spec)
    state = learner.init_state(meta, jax.random.key(1), spec)
    x = jax.random.normal(jax.random.key(2), (12,))
    base, _ = learner.step(meta, state, x, feedback(0))

    def changed_connections(params):
        after, _ = learner.step(params, state, x, feedback(0))
        return np.abs(np.asarray(after[0]["h"] - base[0]["h"])).max(axis=-1) > 0

    offset = {**meta["offset"], "w_h": meta["offset"]["w_h"].at[7].add(0.5)}
    expected = np.zeros((12, 5), bool)
    expected[4:8, 2] = True  # group 7, as with independent groups
    np.testing.assert_array_equal(changed_connections({**meta, "offset": offset}), expected)
    shared = {**meta["base"], "w_h": meta["base"]["w_h"] + 0.5}
    assert changed_connections({**meta, "base": shared}).all()


def test_a_shared_base_needs_several_groups():
    with pytest.raises(ValueError, match="needs groups above 1"):
        VSML(shared_base=True)


def test_groups_that_do_not_divide_the_connections_are_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"groups=7 must divide .*60.*valid values: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60$"):
        VSML(groups=7).init_meta_params(jax.random.key(0), TaskSpec(12, 5))
    with pytest.raises(ValueError, match="groups=120"):
        VSML(groups=120).init_meta_params(jax.random.key(0), TaskSpec(12, 5))


def test_reference_initial_state_randomizes_the_first_part_of_each_cell_state():
    """init_rand_proportion=0.5,init_noise=0: h = 0, the first N/2 cell units truncated-normal (+-2) / sqrt(A)
    per episode, the rest 0; layer by layer, A being that layer's inputs."""
    learner = VSML(hidden=(6,), init_rand_proportion=0.5, init_noise=0.0)
    meta, state = init(learner, spec=TaskSpec(48, 5))
    for layer, inputs in zip(state, (48, 6)):
        assert np.all(np.asarray(layer["h"]) == 0) and np.all(np.asarray(layer["c"][..., 8:]) == 0)
        random = np.asarray(layer["c"][..., :8])
        assert np.abs(random).max() <= 2 / np.sqrt(inputs) and np.all(random != 0)
        assert random.std() == pytest.approx(0.88 / np.sqrt(inputs), rel=0.15)
    other = learner.init_state(meta, jax.random.key(7), TaskSpec(48, 5))
    assert not np.allclose(state[0]["c"], other[0]["c"])  # drawn afresh per episode
    both = VSML(init_rand_proportion=0.5, init_noise=0.1).init_state(meta, jax.random.key(1), TaskSpec(48, 5))
    assert np.asarray(both[0]["c"][..., 8:]).std() == pytest.approx(0.1, rel=0.1)  # init_noise still applies


def test_reference_gate_init_starts_with_closed_input_and_open_forget_gates():
    n, m = 16, 8
    meta, state = init(VSML(gate_init="reference"))
    bias = np.asarray(meta["b"])
    assert np.all(bias[:n] == -5) and np.all(bias[n:2 * n] == 5) and np.all(bias[2 * n:] == 0)
    weights = np.concatenate([np.asarray(meta[k]).ravel() for k in ("w_fwd", "w_bwd", "w_h")])
    assert np.abs(weights).max() <= 2 / np.sqrt(2 * m + n)
    assert weights.std() == pytest.approx(0.88 / np.sqrt(2 * m + n), rel=0.05)
    x = jax.random.normal(jax.random.key(3), (SPEC.input_size,))

    def cell_change(learner):
        meta, state = init(learner)
        new, _ = learner.step(meta, state, x, feedback(1))
        return float(np.abs(np.asarray(new[0]["c"] - state[0]["c"])).mean())

    # an input gate at sigmoid(-5) lets little in: the cell state barely moves
    assert cell_change(VSML(gate_init="reference")) < 0.1 * cell_change(VSML())
    with pytest.raises(ValueError, match="gate_init must be one of lecun, reference"):
        VSML(gate_init="glorot")


def test_merge_fraction_averages_only_the_first_part_of_each_state_vector():
    learner = VSML(merge_fraction=0.5)
    meta = learner.init_meta_params(jax.random.key(0), SPEC)
    copies = jax.vmap(lambda k: learner.init_state(meta, k, SPEC))(jax.random.split(jax.random.key(1), 3))
    copies = [{**layer, "fwd_in": jax.random.normal(jax.random.key(2), layer["fwd_in"].shape)} for layer in copies]
    merged = learner.merge(copies)[0]
    for k in ("h", "c"):
        np.testing.assert_allclose(merged[k][..., :8], jnp.broadcast_to(copies[0][k][..., :8].mean(0), (3, 12, 5, 8)),
                                   rtol=1e-6)
        np.testing.assert_array_equal(merged[k][..., 8:], copies[0][k][..., 8:])  # kept per copy
    np.testing.assert_array_equal(merged["fwd_in"], copies[0]["fwd_in"])
    everything = VSML().merge(copies)[0]["h"]
    np.testing.assert_allclose(everything, jnp.broadcast_to(copies[0]["h"].mean(0), (3, 12, 5, 16)), rtol=1e-6)
    with pytest.raises(ValueError, match="merge_fraction is a fraction"):
        VSML(merge_fraction=1.5)


def test_single_pass_reads_error_and_input_at_once_and_errors_climb_a_layer_per_step():
    """The reference's backward_pass: False. Half the LSTM work per step; the error of a prediction reaches
    the output layer at the next step and the hidden layer one step later (with backward=False: never)."""
    spec = TaskSpec(12, 5)
    assert step_flops(VSML(single_pass=True), spec) < 0.6 * step_flops(VSML(), spec)
    x = jnp.ones(SPEC.input_size)
    for learner, reaches_first_layer in ((VSML(hidden=(6,), single_pass=True), True),
                                         (VSML(hidden=(6,), single_pass=True, backward=False), False)):
        meta, state = init(learner)
        a, logits_a = learner.step(meta, state, x, feedback(1))
        b, logits_b = learner.step(meta, state, x, feedback(4))
        assert trees_equal(a[0]["h"], b[0]["h"]) and not np.allclose(a[1]["h"], b[1]["h"])  # not yet
        assert not np.allclose(logits_a, logits_b)  # the error is read in the same sweep as the input
        a, _ = learner.step(meta, a, x, Feedback.zeros(SPEC.num_classes))
        b, _ = learner.step(meta, b, x, Feedback.zeros(SPEC.num_classes))
        assert np.allclose(a[0]["h"], b[0]["h"]) != reaches_first_layer


@pytest.mark.parametrize("over", ["unit", "all", "example"])
def test_standardized_inputs_ignore_scale_and_offset_and_use_no_later_input(over):
    xs = jax.random.normal(jax.random.key(4), (6, SPEC.input_size)) * 2.0 + 1.0

    def run(learner, xs):
        meta, state = init(learner)
        outputs = []
        for t, x in enumerate(xs):
            state, logits = learner.step(meta, state, x, feedback(t % SPEC.num_classes))
            outputs.append(logits)
        return state, np.stack(outputs)

    learner = VSML(standardize=True, standardize_over=over, hidden=(6,))
    state, logits = run(learner, xs)
    np.testing.assert_allclose(run(learner, 3.0 * xs - 7.0)[1], logits, rtol=1e-4, atol=1e-4)
    plain = VSML(hidden=(6,))
    assert not np.allclose(run(plain, 3.0 * xs - 7.0)[1], run(plain, xs)[1], rtol=1e-3)
    if over == "example":  # each example's own scale and offset are gone too; no statistics are kept
        gains, offsets = jnp.arange(1.0, 7.0)[:, None], jnp.arange(6.0)[:, None]
        np.testing.assert_allclose(run(learner, gains * xs - offsets)[1], logits, rtol=1e-4, atol=1e-4)
        assert "x_moments" not in state[0]
    else:
        np.testing.assert_allclose(state[0]["x_moments"]["mean"], xs.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state[0]["x_moments"]["var"], xs.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(run(learner, xs[:3])[1], logits[:3])  # step t reads inputs up to t only


def test_standardizing_over_all_units_keeps_their_relative_scales():
    xs = jax.random.uniform(jax.random.key(6), (5, 7)) * jnp.array([0.01, 1, 1, 2, 3, 5, 0.0])
    stats = moments.init(7)
    for x in xs:
        stats = moments.update(stats, x)
    seen = VSML(standardize=True, standardize_over="all").input_seen([{"x_moments": stats}], xs[-1])
    np.testing.assert_allclose(seen, (xs[-1] - xs.mean()) / xs.std(), rtol=1e-4, atol=1e-5)
    # the near-constant unit 0 is blown up to unit spread when standardized on its own, not over all
    assert moments.standardize(stats, xs)[:, 0].std() > 0.9 > 0.05 > moments.standardize(stats, xs, True)[:, 0].std()


def test_pooled_moments_of_inner_batch_copies_are_those_of_all_their_examples():
    xs = jax.random.normal(jax.random.key(5), (4, 3, 7)) * 3.0 + 2.0  # 4 steps of 3 copies
    stats = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (3, *leaf.shape)), moments.init(7))
    for t in range(4):
        stats = moments.pool(jax.vmap(moments.update)(stats, xs[t]))
        seen = xs[: t + 1].reshape(-1, 7)
        np.testing.assert_allclose(stats["mean"], jnp.broadcast_to(seen.mean(0), (3, 7)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats["var"], jnp.broadcast_to(seen.var(0), (3, 7)), rtol=1e-4, atol=1e-5)
