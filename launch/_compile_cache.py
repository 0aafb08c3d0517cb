"""Compiled XLA programs kept on disk (JAX's persistent compilation cache), so a resumed run, a sweep's next
seed, the meta-test of a run just trained and a rerun skip most of their compile time. Entry points call
`cache_compiled_programs` at start; worker processes inherit the setting through the environment. The
folder may be deleted at any time; JAX_COMPILATION_CACHE_DIR chooses another one and
JAX_ENABLE_COMPILATION_CACHE=false turns the cache off."""

import os

import jax

from tasks.datasets import cache_dir

DIR_VAR = "JAX_COMPILATION_CACHE_DIR"


def cache_compiled_programs() -> None:
    """Default the cache to <download cache>/xla; a folder the user set is kept."""
    os.environ.setdefault(DIR_VAR, str(cache_dir() / "xla"))
    jax.config.update("jax_compilation_cache_dir", os.environ[DIR_VAR])
