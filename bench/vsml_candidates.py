#!/usr/bin/env python
"""VSML inner-step formulations side by side (the candidates of bench/README.md), one device, interleaved.

    XLA_FLAGS=--xla_force_host_platform_device_count=1 python bench/vsml_candidates.py MEMBERS INPUTS NAMES ROUNDS
    e.g. ... 16 64 base,tanh,bar 7

Each candidate overrides `VSML._update`; M members (vmap) run T=50 steps. Utilization = the current
learner's XLA FLOPs per step x member-steps/s / the f32 matmul rate measured right before and after (the
larger), so rounds interleave and a shared machine's noise hits every candidate alike. Prints the median and
the best round, and the largest logit difference to the first candidate (rounding only, or an ablation).
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


class Sigmoid(V.VSML):
    """The original form: three sigmoids and a tanh per connection and tick."""

    def _update(self, p, layer, fwd_in, bwd_in):
        drive = (fwd_in @ p["w_fwd"])[:, None, :] + p["b"]
        if bwd_in is not None:
            drive = drive + (bwd_in @ p["w_bwd"])[None, :, :]
        h, c = layer["h"], layer["c"]
        for _ in range(self.ticks):
            i, f, g, o = jnp.split(drive + h @ p["w_h"], 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return {**layer, "h": h, "c": c}
class Tanh(V.VSML):
    def _update(self, p, layer, fwd_in, bwd_in):
        n = self.lstm_size
        scale = jnp.concatenate([jnp.full(n, .5), jnp.full(n, .5), jnp.ones(n), jnp.full(n, .5)])
        off = 1 - scale
        drive = (fwd_in @ (p["w_fwd"]*scale))[:, None, :] + p["b"]*scale
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"]*scale))[None, :, :]
        wh = p["w_h"]*scale
        h, c = layer["h"], layer["c"]
        for _ in range(self.ticks):
            a = jnp.tanh(drive + h @ wh) * scale + off
            if self.bar: a = jax.lax.optimization_barrier(a)
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = f * c + i * g
            h = o * jnp.tanh(c)
        return {**layer, "h": h, "c": c}
class Bar(Tanh): bar = True
class Tanh1(Tanh): bar = False
class SigBar(V.VSML):
    def _update(self, p, layer, fwd_in, bwd_in):
        drive = (fwd_in @ p["w_fwd"])[:, None, :] + p["b"]
        if bwd_in is not None:
            drive = drive + (bwd_in @ p["w_bwd"])[None, :, :]
        h, c = layer["h"], layer["c"]
        n = self.lstm_size
        for _ in range(self.ticks):
            z = drive + h @ p["w_h"]
            a = jnp.concatenate([jax.nn.sigmoid(z[..., :2*n]), jnp.tanh(z[..., 2*n:3*n]), jax.nn.sigmoid(z[..., 3*n:])], -1)
            a = jax.lax.optimization_barrier(a)
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = f * c + i * g
            h = o * jnp.tanh(c)
        return {**layer, "h": h, "c": c}
VARIANTS = dict(base=Sigmoid, tanh=V.VSML, bar=Bar, sigbar=SigBar)
class NoMM(Tanh1):  # ablation: no per-connection matmul
    def _update(self, p, layer, fwd_in, bwd_in):
        n = self.lstm_size
        scale = jnp.concatenate([jnp.full(n, .5), jnp.full(n, .5), jnp.ones(n), jnp.full(n, .5)])
        off = 1 - scale
        drive = (fwd_in @ (p["w_fwd"]*scale))[:, None, :] + p["b"]*scale
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"]*scale))[None, :, :]
        h, c = layer["h"], layer["c"]
        for _ in range(self.ticks):
            a = jnp.tanh(drive + jnp.tile(h, 4)) * scale + off
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = f * c + i * g
            h = o * jnp.tanh(c)
        return {**layer, "h": h, "c": c}
class NoAct(Tanh1):  # ablation: matmul, no transcendentals
    def _update(self, p, layer, fwd_in, bwd_in):
        drive = (fwd_in @ p["w_fwd"])[:, None, :] + p["b"]
        if bwd_in is not None:
            drive = drive + (bwd_in @ p["w_bwd"])[None, :, :]
        h, c = layer["h"], layer["c"]
        for _ in range(self.ticks):
            a = (drive + h @ p["w_h"])
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = 0.1*f * c + 0.1*i * g
            h = 0.1*o * c
        return {**layer, "h": h, "c": c}
VARIANTS.update(nomm=NoMM, noact=NoAct)
class Flat(Tanh1):
    def _update(self, p, layer, fwd_in, bwd_in):
        n = self.lstm_size
        A = fwd_in.shape[0]; Bn = layer["h"].shape[1]
        scale = jnp.concatenate([jnp.full(n, .5), jnp.full(n, .5), jnp.ones(n), jnp.full(n, .5)])
        off = 1 - scale
        drive = (fwd_in @ (p["w_fwd"]*scale))[:, None, :] + p["b"]*scale
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"]*scale))[None, :, :]
        drive = jnp.broadcast_to(drive, (A, Bn, 4*n)).reshape(A*Bn, 4*n)
        wh = p["w_h"]*scale
        h, c = layer["h"].reshape(-1, n), layer["c"].reshape(-1, n)
        for _ in range(self.ticks):
            a = jnp.tanh(drive + h @ wh) * scale + off
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = f * c + i * g
            h = o * jnp.tanh(c)
        return {**layer, "h": h.reshape(A, Bn, n), "c": c.reshape(A, Bn, n)}
class HC(Tanh1):  # h and c as one array [.., 2N]: one output fusion per tick
    def _update(self, p, layer, fwd_in, bwd_in):
        n = self.lstm_size
        scale = jnp.concatenate([jnp.full(n, .5), jnp.full(n, .5), jnp.ones(n), jnp.full(n, .5)])
        off = 1 - scale
        drive = (fwd_in @ (p["w_fwd"]*scale))[:, None, :] + p["b"]*scale
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"]*scale))[None, :, :]
        wh = jnp.concatenate([p["w_h"]*scale, jnp.zeros_like(p["w_h"])], 0)
        hc = jnp.concatenate([layer["h"], layer["c"]], -1)
        for _ in range(self.ticks):
            a = jnp.tanh(drive + hc @ wh) * scale + off
            i, f, g, o = jnp.split(a, 4, axis=-1)
            c = f * hc[..., n:] + i * g
            hc = jnp.concatenate([o * jnp.tanh(c), c], -1)
        return {**layer, "h": hc[..., :n], "c": hc[..., n:]}
VARIANTS.update(flat=Flat, hc=HC)

M = int(sys.argv[1]); A = int(sys.argv[2]); names = sys.argv[3].split(','); rounds = int(sys.argv[4])
T = 50
spec = TaskSpec(A, 10)
key = jax.random.key(0)
base = V.VSML()  # the FLOP count of the current learner
p = base.init_meta_params(key, spec)
ps = jax.tree.map(lambda x: x + 0.05*jax.random.normal(key, (M,)+x.shape), p)
xs = jax.random.normal(key, (T, A))
def make(L):
    def member(pm):
        st = L.init_state(pm, key, spec)
        def body(carry, x):
            st, fb = carry
            st, logits = L.step(pm, st, x, fb)
            return (st, Feedback(jax.nn.softmax(logits), jax.nn.softmax(logits))), logits
        return jax.lax.scan(body, (st, Feedback.zeros(10)), xs)[1]
    return jax.jit(jax.vmap(member))
fl = step_flops(base, spec)
fs = {n: make(VARIANTS[n]()) for n in names}
outs = {n: np.asarray(f(ps)) for n, f in fs.items()}
a = jax.random.normal(key,(1024,1024)); mm = jax.jit(lambda a:a@a); mm(a).block_until_ready()
def wall(fn, reps):
    w=time.perf_counter()
    for _ in range(reps): r = fn()
    r.block_until_ready(); return (time.perf_counter()-w)/reps
util = {n: [] for n in names}
for r in range(rounds):
    for n, f in fs.items():
        pk1 = 2*1024**3/wall(lambda: mm(a), 10)
        t = wall(lambda: f(ps), 1)
        pk2 = 2*1024**3/wall(lambda: mm(a), 10)
        util[n].append(fl*M*T/t/max(pk1, pk2))
for n in names:
    print(f"M={M} A={A} {n:10s} util median {np.median(util[n]):.1%} max {np.max(util[n]):.1%}  max|logit-base| {np.abs(outs[n]-outs[names[0]]).max():.2e}")
