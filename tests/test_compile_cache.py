import os
import subprocess
import sys
from pathlib import Path

from launch._compile_cache import DIR_VAR

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ("from launch._compile_cache import cache_compiled_programs; cache_compiled_programs(); "
           "import jax; jax.jit(lambda x: x * 3 + 1)(1.0).block_until_ready()")


def _compile_in_a_fresh_process(env: dict) -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_entry_points_cache_compiled_programs_next_to_the_downloads(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != DIR_VAR}
    _compile_in_a_fresh_process({**env, "XDG_CACHE_HOME": str(tmp_path)})
    assert any((tmp_path / "metalearn" / "xla").iterdir()), "nothing was written to the cache"


def test_a_cache_folder_the_user_chose_is_kept(tmp_path):
    _compile_in_a_fresh_process({**os.environ, DIR_VAR: str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path)})
    assert any((tmp_path / "mine").iterdir())
    assert not (tmp_path / "metalearn").exists()
