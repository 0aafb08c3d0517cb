"""Rank-r ES noise: unit-variance entries, factored gradient sum, same update on any device count, and an
estimate that points downhill."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from metalearn.outer import es
from metalearn.outer.es import ESConfig
from metalearn.outer.mesh import make_mesh

TEMPLATE = {"w": jnp.zeros((30, 20)), "b": jnp.zeros(7)}


def test_rank_r_noise_is_low_rank_with_unit_variance():
    eps = jax.vmap(lambda i: es.pair_noise(jax.random.key(0), i, TEMPLATE, rank=2))(jnp.arange(400))
    assert all(np.linalg.matrix_rank(np.asarray(e)) == 2 for e in eps["w"][:5])
    assert abs(float(eps["w"].mean())) < 0.01 and abs(float(eps["w"].var()) - 1) < 0.05
    assert abs(float(eps["b"].var()) - 1) < 0.1  # vectors keep full-rank noise
    full = es.pair_noise(jax.random.key(0), 3, TEMPLATE, rank=0)
    same = es.pair_noise(jax.random.key(0), 3, TEMPLATE, rank=50)  # rank >= min(m, n): full-rank noise
    np.testing.assert_array_equal(full["w"], same["w"])


def test_factored_weighted_sum_matches_the_explicit_noise():
    weights = jnp.array([0.5, -1.0, 2.0, 0.25, -0.75])
    total = es.noise_weighted_sum(jax.random.key(3), weights, TEMPLATE, chunk=2, rank=3)
    explicit = sum(w * ravel_pytree(es.pair_noise(jax.random.key(3), i, TEMPLATE, rank=3))[0]
                   for i, w in enumerate(weights))
    np.testing.assert_allclose(ravel_pytree(total)[0], explicit, atol=1e-5)


TARGET = {"w": jnp.linspace(-1.0, 1.0, 600).reshape(30, 20), "b": jnp.arange(7.0)}


def quadratic(params, data):
    dist = sum(jnp.sum((params[k] - TARGET[k]) ** 2) for k in TARGET)
    return dist * data, -dist


def one_step(num_devices, rank):
    optimizer = optax.sgd(0.1)
    outer = ESConfig(16, 0.05, chunk=2, noise_rank=rank).build(quadratic, optimizer, make_mesh(num_devices))
    return jax.jit(outer.step)(outer.init(TEMPLATE), jax.random.key(7), jnp.float32(1.0))[0].params


@pytest.mark.parametrize("num_devices", [2, 8])
def test_rank_r_update_is_independent_of_device_count(devices, num_devices):
    for a, b in zip(jax.tree.leaves(one_step(1, rank=2)), jax.tree.leaves(one_step(num_devices, rank=2))):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_rank_r_estimate_points_downhill_like_full_rank():
    """Averaged over generations, the estimate aligns with -grad of the quadratic, as full-rank noise does."""
    true = -ravel_pytree(jax.grad(lambda p: quadratic(p, 1.0)[0])(TEMPLATE))[0]
    fitness = jax.vmap(lambda p: quadratic(p, 1.0)[0])

    def mean_estimate(rank):
        def estimate(key):
            eps = jax.vmap(lambda i: es.pair_noise(key, i, TEMPLATE, rank))(jnp.arange(32))
            members = jax.tree.map(lambda t, e: jnp.concatenate([t + 0.05 * e, t - 0.05 * e]), TEMPLATE, eps)
            return ravel_pytree(es.es_gradient(key, fitness(members), TEMPLATE, jnp.float32(0.05), 8, rank))[0]
        return -jax.vmap(estimate)(jax.random.split(jax.random.key(1), 200)).mean(0)

    cosine = lambda g: float(g @ true / jnp.linalg.norm(g) / jnp.linalg.norm(true))  # noqa: E731
    full, low = cosine(mean_estimate(0)), cosine(mean_estimate(1))
    assert low > 0.8 and full > 0.8, (low, full)


def test_config_rejects_a_negative_rank():
    with pytest.raises(ValueError, match="noise_rank"):
        ESConfig(noise_rank=-1)
