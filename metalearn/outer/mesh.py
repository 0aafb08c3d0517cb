"""The 1-D device mesh every outer optimizer shards over, and placing replicated pytrees on it."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from metalearn.learners.base import PyTree
from metalearn.outer.base import AXIS


def make_mesh(num_devices: int) -> Mesh:
    """A 1-D mesh over the first `num_devices` devices; the population is sharded along it."""
    available = jax.devices()
    if num_devices < 1 or num_devices > len(available):
        raise ValueError(
            f"asked for {num_devices} devices but {len(available)} {available[0].platform.upper()} "
            f"device(s) are present. Use --devices {len(available)} or fewer; to try several devices on a "
            f"CPU-only machine, fake them with XLA_FLAGS=--xla_force_host_platform_device_count=8 set "
            f"before Python starts (e.g. `XLA_FLAGS=--xla_force_host_platform_device_count=8 python "
            f"launch/meta_train.py --devices 8`)."
        )
    return Mesh(available[:num_devices], (AXIS,))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place a pytree on every device of the mesh (params and optimizer state are replicated).

    With several processes (jax.distributed) the mesh spans devices this process cannot address: every
    process passes its own identical host-local copy, and each fills its own devices' replicas from it
    (no cross-process transfer, no equality check)."""
    sharding = NamedSharding(mesh, P())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _global_replica(x, sharding), tree)


def _global_replica(x, sharding: NamedSharding) -> jax.Array:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global: at most a reshard
        return x if x.sharding == sharding else jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(x)
        return jax.random.wrap_key_data(_global_replica(jax.random.key_data(x), sharding), impl=impl)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
