#!/usr/bin/env python
"""VSML inner-step formulations side by side (the candidates of bench/README.md), one device, interleaved.

    XLA_FLAGS=--xla_force_host_platform_device_count=1 python bench/vsml_candidates.py MEMBERS INPUTS NAMES ROUNDS
    e.g. ... 16 64 base,tanh,bar 7

Each candidate overrides `VSML._update` (through `Candidate`); M members (vmap) run T=50 steps. `tanh` is
the current learner (the shared cell of metalearn/learners/lstm.py). Utilization = the current learner's XLA
FLOPs per step x member-steps/s / the f32 matmul rate measured right before and after (the larger), so
rounds interleave and a shared machine's noise hits every candidate alike. Prints the median and the best
round, and the largest logit difference to the first candidate (rounding only, or an ablation).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from metalearn.learners import step_flops  # noqa: E402
from metalearn.learners import vsml as V  # noqa: E402
from metalearn.learners.base import Feedback, TaskSpec  # noqa: E402
from metalearn.learners.lstm import gate_scale, lstm_cell  # noqa: E402

T = 50  # steps per member


def finish(a, c):
    """(h, c) from the gate activations a = [i, f, g, o] (already through their nonlinearities)."""
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = f * c + i * g
    return o * jnp.tanh(c), c


class Candidate(V.VSML):
    """One formulation: `scaled` folds the tanh-form gate factors into the weights; `cell` is one tick."""

    scaled = True

    def _update(self, p, layer, fwd_in, bwd_in):
        p = jax.tree.map(lambda x: x[0, 0], p)  # the layer's parameters carry [groups_in, groups_out] axes: G = 1
        s = gate_scale(self.lstm_size) if self.scaled else jnp.ones(4 * self.lstm_size)
        drive = (fwd_in @ (p["w_fwd"] * s))[:, None, :] + p["b"] * s
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"] * s))[None, :, :]
        h, c = self.run_ticks(drive, p["w_h"] * s, s, layer["h"], layer["c"])
        return {**layer, "h": h, "c": c}

    def run_ticks(self, drive, w_h, s, h, c):
        for _ in range(self.ticks):
            h, c = self.cell(drive + h @ w_h, s, c)
        return h, c

    def cell(self, z, s, c):
        return finish(jnp.tanh(z) * s + (1 - s), c)


class Sigmoid(Candidate):
    """The original form: three sigmoids and a tanh per connection and tick."""

    scaled = False

    def cell(self, z, s, c):
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


class Bar(Candidate):
    """tanh gates + an optimization barrier on the activations (no recomputation)."""

    def cell(self, z, s, c):
        return finish(jax.lax.optimization_barrier(jnp.tanh(z) * s + (1 - s)), c)


class SigBar(Sigmoid):
    """Sigmoid gates, concatenated, + a barrier."""

    def cell(self, z, s, c):
        n = self.lstm_size
        a = jnp.concatenate([jax.nn.sigmoid(z[..., :2 * n]), jnp.tanh(z[..., 2 * n:3 * n]),
                             jax.nn.sigmoid(z[..., 3 * n:])], -1)
        return finish(jax.lax.optimization_barrier(a), c)


class NoMM(Candidate):
    """Ablation: no per-connection matmul."""

    def run_ticks(self, drive, w_h, s, h, c):
        for _ in range(self.ticks):
            h, c = self.cell(drive + jnp.tile(h, 4), s, c)
        return h, c


class NoAct(Sigmoid):
    """Ablation: the matmul, no transcendentals (wrong numbers)."""

    def cell(self, z, s, c):
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = 0.1 * f * c + 0.1 * i * g
        return 0.1 * o * c, c


class Flat(Candidate):
    """A flat [A*B, N] state inside the update."""

    def run_ticks(self, drive, w_h, s, h, c):
        shape, n = h.shape, self.lstm_size
        drive = jnp.broadcast_to(drive, (*shape[:2], 4 * n)).reshape(-1, 4 * n)
        h, c = super().run_ticks(drive, w_h, s, h.reshape(-1, n), c.reshape(-1, n))
        return h.reshape(shape), c.reshape(shape)


class HC(Candidate):
    """h and c as one [.., 2N] array: one output fusion per tick."""

    def run_ticks(self, drive, w_h, s, h, c):
        n = self.lstm_size
        w_hc = jnp.concatenate([w_h, jnp.zeros_like(w_h)], 0)
        hc = jnp.concatenate([h, c], -1)
        for _ in range(self.ticks):
            hc = jnp.concatenate(self.cell(drive + hc @ w_hc, s, hc[..., n:]), -1)
        return hc[..., :n], hc[..., n:]


class Rat(Candidate):
    """The learner's own cell (the written-out tanh of metalearn/learners/lstm.py) in this plain layout."""

    def cell(self, z, s, c):
        return lstm_cell(z, c, prescaled=True)


class RatBlocked(Rat):
    """Rat with the connections cut into `blocks` row blocks, every tick of a block run before the next
    (`lax.map`), so one block's gates, h and c stay in cache across the ticks (28x28: 2 MB of gates per member
    per tick otherwise)."""

    blocks = 8

    def run_ticks(self, drive, w_h, s, h, c):
        rows = h.shape[0]
        split = lambda x: x.reshape(self.blocks, rows // self.blocks, *x.shape[1:])  # noqa: E731
        drive = jnp.broadcast_to(drive, h.shape[:-1] + drive.shape[-1:])
        hs, cs = jax.lax.map(lambda args: Rat.run_ticks(self, w_h=w_h, s=s, drive=args[0], h=args[1], c=args[2]),
                             (split(drive), split(h), split(c)))
        return hs.reshape(h.shape), cs.reshape(c.shape)


VARIANTS = dict(base=Sigmoid, tanh=V.VSML, bar=Bar, sigbar=SigBar, nomm=NoMM, noact=NoAct, flat=Flat, hc=HC, rat=Rat,
                **{f"ratblk{k}": type(f"RatBlocked{k}", (RatBlocked,), {"blocks": k}) for k in (2, 4, 8, 16)})


def episode_fn(learner, spec, key, xs):
    """jit(vmap over members) of a T-step episode of `learner`; returns the logits [M, T, C]."""
    def member(pm):
        def body(carry, x):
            st, fb = carry
            st, logits = learner.step(pm, st, x, fb)
            return (st, Feedback(jax.nn.softmax(logits), jax.nn.softmax(logits))), logits
        return jax.lax.scan(body, (learner.init_state(pm, key, spec), Feedback.zeros(spec.num_classes)), xs)[1]
    return jax.jit(jax.vmap(member))


def wall(fn, reps):
    tic = time.perf_counter()
    for _ in range(reps):
        out = fn()
    out.block_until_ready()
    return (time.perf_counter() - tic) / reps


def main(members: int, inputs: int, names: list[str], rounds: int) -> None:
    spec, key = TaskSpec(inputs, 10), jax.random.key(0)
    base = V.VSML()  # the FLOP count of the current learner
    p = base.init_meta_params(key, spec)
    ps = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(key, (members,) + x.shape), p)
    xs = jax.random.normal(key, (T, inputs))
    flops = step_flops(base, spec)
    fs = {n: episode_fn(VARIANTS[n](), spec, key, xs) for n in names}
    outs = {n: np.asarray(f(ps)) for n, f in fs.items()}
    a = jax.random.normal(key, (1024, 1024))
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    util = {n: [] for n in names}
    for _ in range(rounds):
        for n, f in fs.items():
            before = 2 * 1024**3 / wall(lambda: mm(a), 10)
            seconds = wall(lambda: f(ps), 1)
            after = 2 * 1024**3 / wall(lambda: mm(a), 10)
            util[n].append(flops * members * T / seconds / max(before, after))
    for n in names:
        print(f"M={members} A={inputs} {n:10s} util median {np.median(util[n]):.1%} max {np.max(util[n]):.1%}  "
              f"max|logit-base| {np.abs(outs[n] - outs[names[0]]).max():.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]))
