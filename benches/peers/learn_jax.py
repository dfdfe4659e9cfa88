#!/usr/bin/env python3
"""JAX peer of `lineage bench learn`: a population of P independent networks
trained side by side, the EvoJAX / evosax way: one organism's training step
written for a single network, `jax.vmap` over the population axis, `jax.jit`
around it, one jitted call per optimiser step.

Usage:
  python learn_jax.py --model mlp:64-128-10 --optimizer sgd \
      --population 64 --batch 64 --steps 200 [--check] [--scan]

Prints one JSON line on stdout:
  {"framework": "jax", "version", "model", "optimizer", "population", "batch",
   "steps", "threads", "variant", "seconds", "organism_steps_per_s", "gflops",
   "final_train_loss"}
`seconds` times only the `--steps` training steps, after `--warmup` untimed
steps (the first one compiles).

Models (spelled as Lineage's CLI spells them):
  mlp:IN-H...-OUT            ReLU MLP with biases, softmax cross-entropy.
  rnn:IN-H-OUT:tT            h[t+1] = relu(W_in x[t] + W_rec h[t] + b), h0 = 0,
                             y[t] = W_out h[t+1] + b_out, cross-entropy at every step.
  gru:IN-H-OUT:tT            PyTorch's GRU (gates r, z, n; w_ih [3H, IN], w_hh
                             [3H, H], b_ih and b_hh), the same readout.
  lstm:IN-H-OUT:tT           PyTorch's LSTM (gates i, f, g, o; w_ih [4H, IN], w_hh
                             [4H, H], b_ih and b_hh, forget-gate bias 1 added as
                             Lineage does), the same readout.
  transformer:IN-D-OUT:lL:hH:ffF:tT
                             dense input -> w_in/b_in to D, learned position table
                             [T, D], L pre-LayerNorm blocks (causal MHA, qkv [3D, D]
                             and out [D, D] without bias; MLP D->F GELU(tanh)->D with
                             biases), final LayerNorm, head [OUT, D] without bias,
                             cross-entropy at every position.
Options (Lineage's too): `:relu` (the MLP's and the RNN's activation already;
  the transformer's MLP blocks use ReLU instead of GELU; `:gelu` says the
  default), `:noln` (transformer: no LayerNorm anywhere, and no LayerNorm
  parameters), `:last` (RNN and transformer: only the last position of each
  sequence is scored, as in the ICL world; the other positions' labels are
  drawn but unused). With `:last` the readout (the transformer's final
  LayerNorm and head, the RNN's w_out) runs at the last position only, a
  shortcut the FLOP count below does not take.
Data: x ~ N(0, 1), one fixed batch per organism, uniform random labels.
Init: matrices N(0, 1/fan_in), position table N(0, 1), biases 0, LayerNorm gains 1.
Loss of an organism: mean over its examples (and scored positions).

Optimisers (PyTorch semantics, written by hand, no optax):
  sgd:   lr 0.01, momentum 0.9: buf = 0.9 buf + g; p -= lr buf.
  adamw: lr 1e-3, betas (0.9, 0.999), eps 1e-8, decoupled weight decay 0.01
         on every parameter: p -= lr wd p; then Adam with bias correction.

FLOPs of one organism-step (the same formula as learn_torch.py and Lineage's
core/learn/src/bench.rs): 2*m*n*k for every matrix product of the forward
pass, times 3 for forward + backward, whatever shortcuts an implementation
takes:
  mlp:          3 * sum_layers 2*B*in*out
  rnn:          3 * T * 2*B*(IN*H + H*H + H*OUT)
  gru, lstm:    3 * T * 2*B*(G*(IN*H + H*H) + H*OUT), G = 3 or 4 gates
  transformer:  3 * 2*B*T*(IN*D + L*(3D*D + D*D + 2*D*F + 2*T*D) + D*OUT)
                (2*T*D per position and layer: Q K^T and A V over all T x T
                 pairs, causal mask or not)
gflops = P * S * flops_per_step / seconds / 1e9.

Platform: `--platform cuda` runs on the first GPU instead of the CPU (the
JSON line says which device); `--threads` then only narrows the host threads.

Threads: XLA's CPU client sizes its intra-op thread pool to the CPUs this
process may run on (the affinity mask); by default that is all cores (2 on
the benchmark machine). `--threads N` narrows the affinity mask to N cores
with os.sched_setaffinity *before* jax is imported, the only dependable knob
(JAX has no public thread-count setting).

Variants: `--scan` runs the S steps as one jitted `lax.scan` instead of one
jitted call per step; the per-step-call variant is the main number (it is
what EvoJAX-style training loops do, and what the comparison script runs).

`--check` prints a sanity check to stderr: the mean loss over organisms at
the first and last step (it must fall) and, retraining organism 0 alone with
the same start and data, the largest difference between its losses alone and
inside the population (it must be at rounding level, which shows organisms
are independent and each one's gradient is that of its own mean loss).
"""

import argparse
import json
import math
import os
import sys
import time


def parse_model(text):
    """Parses a Lineage model string into a dict."""
    parts = text.split(":")
    kind = parts[0]
    try:
        widths = [int(w) for w in parts[1].split("-")]
    except (IndexError, ValueError):
        sys.exit(f"model `{text}`: expected KIND:WIDTHS, e.g. mlp:64-128-10")
    opts = {"t": 8, "l": 2, "h": 4, "ff": None}
    flags = set()
    for opt in parts[2:]:
        if opt in ("relu", "gelu", "noln", "last"):
            flags.add(opt)
            continue
        for key in ("ff", "t", "l", "h"):
            if opt.startswith(key) and opt[len(key):].isdigit():
                opts[key] = int(opt[len(key):])
                break
        else:
            sys.exit(f"model `{text}`: unsupported option `{opt}`")
    # ReLU is the MLP's and the RNN's activation already; GELU, `:noln`
    # and `:last` change only what they say below.
    allowed = {"mlp": {"relu"}, "rnn": {"relu", "last"}, "gru": {"last"}, "lstm": {"last"},
               "transformer": {"relu", "gelu", "noln", "last"}}
    for flag in sorted(flags - allowed.get(kind, flags)):
        sys.exit(f"model `{text}`: `:{flag}` is not an option of {kind} here")
    if {"relu", "gelu"} <= flags:
        sys.exit(f"model `{text}`: `:relu` or `:gelu`, not both")
    if kind == "mlp":
        if len(widths) < 2:
            sys.exit(f"model `{text}`: an MLP needs an input and an output width")
        return {"kind": "mlp", "widths": widths, "seq": 1, "last": False}
    if kind in ("rnn", "gru", "lstm", "transformer"):
        if len(widths) != 3:
            sys.exit(f"model `{text}`: expected IN-HIDDEN-OUT")
        i, h, o = widths
        m = {"kind": kind, "in": i, "hidden": h, "out": o, "seq": opts["t"], "last": "last" in flags}
        if kind == "transformer":
            if h % opts["h"]:
                sys.exit(f"model `{text}`: {opts['h']} heads do not divide d_model {h}")
            m.update(
                layers=opts["l"],
                heads=opts["h"],
                ff=opts["ff"] or 2 * h,
                layer_norm="noln" not in flags,
                activation="relu" if "relu" in flags else "gelu",
            )
        return m
    sys.exit(f"model `{text}`: the kind must be mlp, rnn, gru, lstm or transformer")


GATES = {"gru": 3, "lstm": 4}


def flops_per_step(m, batch):
    """Forward + backward FLOPs of one organism-step (see the module docs)."""
    b = batch
    if m["kind"] == "mlp":
        fwd = sum(2 * b * i * o for i, o in zip(m["widths"], m["widths"][1:]))
    elif m["kind"] == "rnn":
        i, h, o, t = m["in"], m["hidden"], m["out"], m["seq"]
        fwd = t * 2 * b * (i * h + h * h + h * o)
    elif m["kind"] in ("gru", "lstm"):
        i, h, o, t = m["in"], m["hidden"], m["out"], m["seq"]
        g = GATES[m["kind"]]
        fwd = t * 2 * b * (g * (i * h + h * h) + h * o)
    else:
        i, d, o, t, f = m["in"], m["hidden"], m["out"], m["seq"], m["ff"]
        per_layer = 3 * d * d + d * d + 2 * d * f + 2 * t * d
        fwd = 2 * b * t * (i * d + m["layers"] * per_layer + d * o)
    return 3.0 * fwd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mlp:64-128-10")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile)")
    ap.add_argument("--threads", type=int, default=0, help="cores to use (default: all)")
    ap.add_argument("--scan", action="store_true", help="all steps in one jitted lax.scan")
    ap.add_argument("--check", action="store_true", help="sanity check on stderr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--platform", default="cpu", choices=["cpu", "cuda"],
                    help="XLA backend (cuda needs jax[cuda12] and a GPU; benches/gpu.sh)")
    args = ap.parse_args()
    m = parse_model(args.model)

    if args.threads > 0:
        cpus = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cpus)
    threads = len(os.sched_getaffinity(0))

    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_platforms", args.platform)

    # ---- one organism -------------------------------------------------
    def normal(key, shape, std):
        return std * jax.random.normal(key, shape, jnp.float32)

    def init(key):
        """Parameters of one organism (a dict of arrays)."""
        p = {}
        keys = iter(jax.random.split(key, 64))

        def mat(name, rows, cols):
            p[name] = normal(next(keys), (rows, cols), 1.0 / math.sqrt(cols))

        def vec(name, n, value=0.0):
            p[name] = jnp.full((n,), value, jnp.float32)

        if m["kind"] == "mlp":
            for l, (i, o) in enumerate(zip(m["widths"], m["widths"][1:])):
                mat(f"w{l}", o, i)
                vec(f"b{l}", o)
        elif m["kind"] == "rnn":
            i, h, o = m["in"], m["hidden"], m["out"]
            mat("w_in", h, i)
            mat("w_rec", h, h)
            vec("b", h)
            mat("w_out", o, h)
            vec("b_out", o)
        elif m["kind"] in ("gru", "lstm"):
            i, h, o = m["in"], m["hidden"], m["out"]
            g = GATES[m["kind"]]
            mat("w_ih", g * h, i)
            mat("w_hh", g * h, h)
            vec("b_ih", g * h)
            vec("b_hh", g * h)
            mat("w_out", o, h)
            vec("b_out", o)
        else:
            i, d, o, t, f = m["in"], m["hidden"], m["out"], m["seq"], m["ff"]
            mat("w_in", d, i)
            vec("b_in", d)
            p["pos"] = normal(next(keys), (t, d), 1.0)
            ln = m["layer_norm"]
            for l in range(m["layers"]):
                if ln:
                    vec(f"l{l}.ln1.g", d, 1.0)
                    vec(f"l{l}.ln1.b", d)
                mat(f"l{l}.qkv", 3 * d, d)
                mat(f"l{l}.out", d, d)
                if ln:
                    vec(f"l{l}.ln2.g", d, 1.0)
                    vec(f"l{l}.ln2.b", d)
                mat(f"l{l}.fc", f, d)
                vec(f"l{l}.fc_b", f)
                mat(f"l{l}.proj", d, f)
                vec(f"l{l}.proj_b", d)
            if ln:
                vec("ln_f.g", d, 1.0)
                vec("ln_f.b", d)
            mat("head", o, d)
        return p

    def data(key):
        """One organism's fixed batch: inputs and integer labels."""
        kx, ky = jax.random.split(key)
        b = args.batch
        if m["kind"] == "mlp":
            x = jax.random.normal(kx, (b, m["widths"][0]), jnp.float32)
            y = jax.random.randint(ky, (b,), 0, m["widths"][-1])
        else:
            x = jax.random.normal(kx, (b, m["seq"], m["in"]), jnp.float32)
            y = jax.random.randint(ky, (b, m["seq"]), 0, m["out"])
        return x, y

    def layer_norm(p, name, x):
        if not m["layer_norm"]:
            return x  # `:noln`: the identity, no parameters
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) * lax.rsqrt(var + 1e-5) * p[f"{name}.g"] + p[f"{name}.b"]

    def act(z):
        if m["activation"] == "relu":
            return jax.nn.relu(z)
        return jax.nn.gelu(z, approximate=True)

    def logits_of(p, x):
        if m["kind"] == "mlp":
            n = len(m["widths"]) - 1
            h = x
            for l in range(n):
                h = h @ p[f"w{l}"].T + p[f"b{l}"]
                if l < n - 1:
                    h = jax.nn.relu(h)
            return h
        if m["kind"] == "rnn":
            xs = jnp.swapaxes(x, 0, 1)  # [T, B, IN]
            h0 = jnp.zeros((x.shape[0], m["hidden"]), jnp.float32)

            def cell(h, xt):
                h = jax.nn.relu(xt @ p["w_in"].T + h @ p["w_rec"].T + p["b"])
                return h, h

            _, hs = lax.scan(cell, h0, xs)  # [T, B, H]
            if m["last"]:
                return hs[-1] @ p["w_out"].T + p["b_out"]  # [B, OUT]
            return jnp.swapaxes(hs @ p["w_out"].T + p["b_out"], 0, 1)
        if m["kind"] in ("gru", "lstm"):
            xs = jnp.swapaxes(x, 0, 1)  # [T, B, IN]
            hh = m["hidden"]
            h0 = jnp.zeros((x.shape[0], hh), jnp.float32)

            def gru(h, xt):
                gi = xt @ p["w_ih"].T + p["b_ih"]
                gh = h @ p["w_hh"].T + p["b_hh"]
                r = jax.nn.sigmoid(gi[:, :hh] + gh[:, :hh])
                z = jax.nn.sigmoid(gi[:, hh:2 * hh] + gh[:, hh:2 * hh])
                n = jnp.tanh(gi[:, 2 * hh:] + r * gh[:, 2 * hh:])
                h = (1 - z) * n + z * h
                return h, h

            def lstm(carry, xt):
                h, c = carry
                g = xt @ p["w_ih"].T + p["b_ih"] + h @ p["w_hh"].T + p["b_hh"]
                i = jax.nn.sigmoid(g[:, :hh])
                f = jax.nn.sigmoid(g[:, hh:2 * hh] + 1.0)
                u = jnp.tanh(g[:, 2 * hh:3 * hh])
                o = jax.nn.sigmoid(g[:, 3 * hh:])
                c = f * c + i * u
                h = o * jnp.tanh(c)
                return (h, c), h

            if m["kind"] == "gru":
                _, hs = lax.scan(gru, h0, xs)
            else:
                _, hs = lax.scan(lstm, (h0, h0), xs)
            if m["last"]:
                return hs[-1] @ p["w_out"].T + p["b_out"]
            return jnp.swapaxes(hs @ p["w_out"].T + p["b_out"], 0, 1)
        # transformer
        b, t = x.shape[0], x.shape[1]
        d, nh = m["hidden"], m["heads"]
        hd = d // nh
        causal = jnp.tril(jnp.ones((t, t), bool))
        h = x @ p["w_in"].T + p["b_in"] + p["pos"][:t]
        for l in range(m["layers"]):
            a = layer_norm(p, f"l{l}.ln1", h)
            qkv = (a @ p[f"l{l}.qkv"].T).reshape(b, t, 3, nh, hd)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, T, NH, HD]
            s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
            s = jnp.where(causal, s, -jnp.inf)
            att = jax.nn.softmax(s, axis=-1)
            o = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
            h = h + o @ p[f"l{l}.out"].T
            a = layer_norm(p, f"l{l}.ln2", h)
            a = act(a @ p[f"l{l}.fc"].T + p[f"l{l}.fc_b"])
            h = h + a @ p[f"l{l}.proj"].T + p[f"l{l}.proj_b"]
        if m["last"]:
            h = h[:, -1]  # [B, D]: only the last position is read out
        h = layer_norm(p, "ln_f", h)
        return h @ p["head"].T

    def loss_fn(p, x, y):
        z = logits_of(p, x)
        if m["last"]:
            y = y[:, -1]  # `:last`: the last position's label alone
        logp = jax.nn.log_softmax(z, axis=-1)
        nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)
        return nll.mean()  # one organism's mean over examples (and scored positions)

    if args.optimizer == "sgd":
        lr, mu = 0.01, 0.9

        def opt_init(p):
            return {"buf": jax.tree.map(jnp.zeros_like, p)}

        def opt_update(p, g, s):
            buf = jax.tree.map(lambda b, g: mu * b + g, s["buf"], g)
            p = jax.tree.map(lambda p, b: p - lr * b, p, buf)
            return p, {"buf": buf}
    else:
        lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.01

        def opt_init(p):
            z = jax.tree.map(jnp.zeros_like, p)
            return {"m": z, "v": z, "t": jnp.zeros((), jnp.float32)}

        def opt_update(p, g, s):
            t = s["t"] + 1.0
            m1 = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, s["m"], g)
            v1 = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, s["v"], g)
            bc1 = 1.0 - b1 ** t
            bc2 = 1.0 - b2 ** t

            def upd(p, m, v):
                p = p * (1.0 - lr * wd)
                return p - (lr / bc1) * m / (jnp.sqrt(v) / jnp.sqrt(bc2) + eps)

            return jax.tree.map(upd, p, m1, v1), {"m": m1, "v": v1, "t": t}

    def step(p, s, x, y):
        """One optimiser step of one organism."""
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        p, s = opt_update(p, g, s)
        return p, s, loss

    # ---- the population: vmap over organisms, jit around it -------------
    pop_step = jax.jit(jax.vmap(step), donate_argnums=(0, 1))

    def pop_scan(p, s, x, y, n):
        def body(carry, _):
            p, s = carry
            p, s, loss = jax.vmap(step)(p, s, x, y)
            return (p, s), loss

        (p, s), losses = lax.scan(body, (p, s), None, length=n)
        return p, s, losses

    pop_scan = jax.jit(pop_scan, static_argnums=4, donate_argnums=(0, 1))

    P = args.population
    key = jax.random.PRNGKey(args.seed)
    kp, kd = jax.random.split(key)
    params0 = jax.vmap(init)(jax.random.split(kp, P))
    x, y = jax.vmap(data)(jax.random.split(kd, P))
    jax.block_until_ready((params0, x, y))

    def fresh(params):
        # A copy: the jitted step donates (reuses) its input buffers.
        params = jax.tree.map(jnp.copy, params)
        return params, jax.vmap(opt_init)(params)

    # ---- timing -------------------------------------------------------
    params, state = fresh(params0)
    if args.scan:
        if args.warmup > 0:
            # Compiles the scan of S steps (the length is static).
            params, state, _ = pop_scan(params, state, x, y, args.steps)
            jax.block_until_ready(params)
            params, state = fresh(params0)
        start = time.perf_counter()
        params, state, losses = pop_scan(params, state, x, y, args.steps)
        jax.block_until_ready((params, losses))
        seconds = time.perf_counter() - start
        last = losses[-1]
    else:
        for _ in range(args.warmup):
            params, state, loss = pop_step(params, state, x, y)
        jax.block_until_ready(params)
        start = time.perf_counter()
        for _ in range(args.steps):
            params, state, loss = pop_step(params, state, x, y)
        jax.block_until_ready((params, loss))
        seconds = time.perf_counter() - start
        last = loss

    org_steps = P * args.steps
    print(json.dumps({
        "framework": "jax",
        "version": jax.__version__,
        "model": args.model,
        "optimizer": args.optimizer,
        "population": P,
        "batch": args.batch,
        "steps": args.steps,
        "threads": threads,
        "platform": args.platform,
        "device": str(jax.devices()[0].device_kind),
        "variant": "jit(vmap(step)), lax.scan over steps" if args.scan else "jit(vmap(step)), one call per step",
        "seconds": round(seconds, 6),
        "organism_steps_per_s": round(org_steps / seconds, 1),
        "gflops": round(org_steps * flops_per_step(m, args.batch) / seconds / 1e9, 3),
        "final_train_loss": round(float(jnp.mean(last)), 6),
    }), flush=True)

    if args.check:
        n = max(args.steps, 20)
        params, state = fresh(params0)
        curve = []
        for _ in range(n):
            params, state, loss = pop_step(params, state, x, y)
            curve.append(loss)
        curve = jnp.stack(curve)  # [n, P]
        first, final = float(curve[0].mean()), float(curve[-1].mean())
        # Organism 0 alone: a population of one with the same start and data.
        one = jax.tree.map(lambda a: a[:1], params0)
        one, s1 = fresh(one)
        alone = []
        for _ in range(n):
            one, s1, loss = pop_step(one, s1, x[:1], y[:1])
            alone.append(loss[0])
        alone = jnp.stack(alone)
        diff = float(jnp.max(jnp.abs(alone - curve[:, 0])))
        falls = int(jnp.sum(curve[-1] < curve[0]))
        ok = final < first and falls == P and diff < 1e-3 * max(1.0, first)
        print(
            f"check jax {args.model} {args.optimizer}: mean loss {first:.4f} -> {final:.4f} over {n} steps, "
            f"falls for {falls}/{P} organisms; organism 0 alone vs in population: max |dloss| {diff:.2e} "
            f"-> {'OK' if ok else 'FAILED'}",
            file=sys.stderr,
        )
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
