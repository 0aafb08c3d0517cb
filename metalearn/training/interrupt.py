"""SIGTERM and Ctrl-C during meta-training: finish the generation, save, flush, exit with a clear line.

The first SIGTERM (what SLURM sends before preemption) or SIGINT only sets a flag that the loop reads
between generations; after it, SIGINT is back to the default action, so a second Ctrl-C kills the process
at once (the checkpoints stay intact: orbax renames a step into place only when it is complete).
With several processes, each generation they agree (an all-gather of their flags) so all stop together.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import jax
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run stopped on a signal after saving a checkpoint; `exit_code` is the shell's 128 + signal."""

    def __init__(self, signum: int, generation: int):
        self.signum, self.generation, self.exit_code = signum, generation, 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after generation {generation}: checkpoint "
                         f"saved and metrics flushed; continue with --resume")


class StopOnSignal:
    """While active (main thread only), SIGTERM / SIGINT request a stop instead of killing the process."""

    def __init__(self):
        self.signum, self._previous = 0, {}

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C aborts at once
        print(f"\n{signal.Signals(signum).name}: finishing this generation, then saving a checkpoint "
              f"(Ctrl-C again aborts at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            if handler is not None:  # None: a handler installed outside Python (cannot be put back)
                signal.signal(s, handler)

    @staticmethod
    def wait(tree):
        """`tree` once its arrays are computed, waiting in short sleeps: Python runs signal handlers only
        between bytecodes, so a thread blocked in XLA for a whole generation would hear Ctrl-C only at its
        end (and a second Ctrl-C could not abort)."""
        leaves = jax.tree.leaves(tree)
        while not all(x.is_ready() for x in leaves):
            time.sleep(0.002)
        return tree

    def requested(self) -> int:
        """The signal that asked for a stop (0: none), the same in every process."""
        if jax.process_count() == 1:
            return self.signum
        from jax.experimental import multihost_utils

        flags = np.asarray(multihost_utils.process_allgather(np.int32(self.signum)))
        return int(flags.max())
