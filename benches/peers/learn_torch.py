#!/usr/bin/env python3
"""PyTorch peer of `lineage bench learn`: a population of P independent
networks trained side by side as batched tensors: every weight is stacked to
[P, out, in] (biases [P, 1, out]), layers are `torch.baddbmm` / `torch.bmm`,
gradients come from autograd and the update from `torch.optim.SGD` /
`torch.optim.AdamW` over the stacked parameters.

Usage:
  python learn_torch.py --model mlp:64-128-10 --optimizer sgd \
      --population 64 --batch 64 --steps 200 [--check]

Prints one JSON line on stdout:
  {"framework": "pytorch", "version", "model", "optimizer", "population",
   "batch", "steps", "threads", "variant", "seconds", "organism_steps_per_s",
   "gflops", "final_train_loss"}
`seconds` times only the `--steps` training steps, after `--warmup` untimed
steps.

Why the stacked optimiser equals P independent ones: the loss is the SUM over
organisms of each organism's MEAN loss, so the gradient of organism p's slice
is exactly the gradient of its own mean loss; SGD and AdamW are elementwise,
so updating the stacked tensors updates every organism as if alone. (A mean
over organisms would scale SGD's steps by 1/P.) `--check` verifies this.

Models (spelled as Lineage's CLI spells them):
  mlp:IN-H...-OUT            ReLU MLP with biases, softmax cross-entropy.
  rnn:IN-H-OUT:tT            h[t+1] = relu(W_in x[t] + W_rec h[t] + b), h0 = 0,
                             y[t] = W_out h[t+1] + b_out, cross-entropy at every step.
  transformer:IN-D-OUT:lL:hH:ffF:tT
                             dense input -> w_in/b_in to D, learned position table
                             [T, D], L pre-LayerNorm blocks (causal MHA, qkv [3D, D]
                             and out [D, D] without bias, attention by
                             F.scaled_dot_product_attention(is_causal=True); MLP
                             D->F GELU(tanh)->D with biases), final LayerNorm, head
                             [OUT, D] without bias, cross-entropy at every position.
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

Optimisers: torch.optim.SGD(lr=0.01, momentum=0.9) (buf = 0.9 buf + g;
p -= lr buf) and torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
weight_decay=0.01) on every parameter; PyTorch's default implementation
(foreach, multi-tensor) is used.

FLOPs of one organism-step (the same formula as learn_jax.py and Lineage's
core/learn/src/bench.rs): 2*m*n*k for every matrix product of the forward
pass, times 3 for forward + backward, whatever shortcuts an implementation
takes:
  mlp:          3 * sum_layers 2*B*in*out
  rnn:          3 * T * 2*B*(IN*H + H*H + H*OUT)
  transformer:  3 * 2*B*T*(IN*D + L*(3D*D + D*D + 2*D*F + 2*T*D) + D*OUT)
                (2*T*D per position and layer: Q K^T and A V over all T x T
                 pairs, causal mask or not)
gflops = P * S * flops_per_step / seconds / 1e9.

Threads: torch.set_num_threads(N) sets the intra-op (OpenMP) pool that
matmuls and elementwise kernels use; N = --threads, by default all cores
(os.cpu_count(), 2 on the benchmark machine). The inter-op pool is unused
(one Python thread issues every op).

`--check` prints a sanity check to stderr: the mean loss over organisms at
the first and last step (it must fall) and, retraining organism 0 alone with
the same start and data, the largest difference between its losses alone and
inside the population (it must be at rounding level).
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
    allowed = {"mlp": {"relu"}, "rnn": {"relu", "last"}, "transformer": {"relu", "gelu", "noln", "last"}}
    for flag in sorted(flags - allowed.get(kind, flags)):
        sys.exit(f"model `{text}`: `:{flag}` is not an option of {kind} here")
    if {"relu", "gelu"} <= flags:
        sys.exit(f"model `{text}`: `:relu` or `:gelu`, not both")
    if kind == "mlp":
        if len(widths) < 2:
            sys.exit(f"model `{text}`: an MLP needs an input and an output width")
        return {"kind": "mlp", "widths": widths, "seq": 1, "last": False}
    if kind in ("rnn", "transformer"):
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
    sys.exit(f"model `{text}`: the kind must be mlp, rnn or transformer")


def flops_per_step(m, batch):
    """Forward + backward FLOPs of one organism-step (see the module docs)."""
    b = batch
    if m["kind"] == "mlp":
        fwd = sum(2 * b * i * o for i, o in zip(m["widths"], m["widths"][1:]))
    elif m["kind"] == "rnn":
        i, h, o, t = m["in"], m["hidden"], m["out"], m["seq"]
        fwd = t * 2 * b * (i * h + h * h + h * o)
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
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (default: all cores)")
    ap.add_argument("--check", action="store_true", help="sanity check on stderr")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    m = parse_model(args.model)

    import torch
    import torch.nn.functional as F

    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    P, B = args.population, args.batch

    # ---- parameters, stacked over the population ------------------------
    def make_params(P):
        p = {}

        def mat(name, rows, cols):
            p[name] = torch.randn(P, rows, cols) / math.sqrt(cols)

        def vec(name, n, value=0.0):
            p[name] = torch.full((P, 1, n), value)  # [P, 1, n] broadcasts over rows

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
        else:
            i, d, o, t, f = m["in"], m["hidden"], m["out"], m["seq"], m["ff"]
            mat("w_in", d, i)
            vec("b_in", d)
            p["pos"] = torch.randn(P, t, d)
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

    params0 = make_params(P)
    if m["kind"] == "mlp":
        x = torch.randn(P, B, m["widths"][0])
        y = torch.randint(0, m["widths"][-1], (P, B))
        classes = m["widths"][-1]
    else:
        x = torch.randn(P, B, m["seq"], m["in"])
        y = torch.randint(0, m["out"], (P, B, m["seq"]))
        classes = m["out"]

    def linear(h, w, b=None):
        """h [P, R, in] times w [P, out, in]^T (+ b [P, 1, out])."""
        wt = w.transpose(1, 2)
        return torch.bmm(h, wt) if b is None else torch.baddbmm(b, h, wt)

    def layer_norm(p, name, h):
        if not m["layer_norm"]:
            return h  # `:noln`: the identity, no parameters
        # h [P, R, D]; per-organism gain and bias [P, 1, D].
        return torch.addcmul(p[f"{name}.b"], F.layer_norm(h, h.shape[-1:], eps=1e-5), p[f"{name}.g"])

    def act(z):
        if m["activation"] == "relu":
            return torch.relu(z)
        return F.gelu(z, approximate="tanh")

    def logits_of(p, x):
        if m["kind"] == "mlp":
            n = len(m["widths"]) - 1
            h = x
            for l in range(n):
                h = linear(h, p[f"w{l}"], p[f"b{l}"])
                if l < n - 1:
                    h = torch.relu(h)
            return h
        if m["kind"] == "rnn":
            Pn, b, t, _ = x.shape
            # Input projections of all steps at once: [P, B*T, H].
            u = linear(x.reshape(Pn, b * t, -1), p["w_in"], p["b"]).reshape(Pn, b, t, -1)
            h = x.new_zeros(Pn, b, m["hidden"])
            w_rec_t = p["w_rec"].transpose(1, 2)
            hs = []
            for s in range(t):
                h = torch.relu(torch.baddbmm(u[:, :, s], h, w_rec_t))
                hs.append(h)
            if m["last"]:
                return linear(h, p["w_out"], p["b_out"])  # [P, B, OUT]
            hs = torch.stack(hs, 2).reshape(Pn, b * t, -1)
            return linear(hs, p["w_out"], p["b_out"])
        # transformer
        Pn, b, t, _ = x.shape
        d, nh = m["hidden"], m["heads"]
        hd = d // nh
        h = linear(x.reshape(Pn, b * t, -1), p["w_in"], p["b_in"]).reshape(Pn, b, t, d)
        h = (h + p["pos"][:, None, :t]).reshape(Pn, b * t, d)
        for l in range(m["layers"]):
            a = layer_norm(p, f"l{l}.ln1", h)
            qkv = linear(a, p[f"l{l}.qkv"]).reshape(Pn * b, t, 3, nh, hd).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)  # [P*B, NH, T, HD]
            o = o.transpose(1, 2).reshape(Pn, b * t, d)
            h = h + linear(o, p[f"l{l}.out"])
            a = layer_norm(p, f"l{l}.ln2", h)
            a = act(linear(a, p[f"l{l}.fc"], p[f"l{l}.fc_b"]))
            h = linear(a, p[f"l{l}.proj"], p[f"l{l}.proj_b"]).add_(h)
        if m["last"]:
            h = h.reshape(Pn, b, t, d)[:, :, -1]  # [P, B, D]: only the last position is read out
        h = layer_norm(p, "ln_f", h)
        return linear(h, p["head"])

    def per_organism_loss(p, x, y):
        """[P]: each organism's mean cross-entropy over its examples (and scored positions)."""
        if m["last"]:
            y = y[..., -1]  # `:last`: the last position's label alone, [P, B]
        z = logits_of(p, x).reshape(-1, classes)
        nll = F.cross_entropy(z, y.reshape(-1), reduction="none")
        return nll.reshape(x.shape[0], -1).mean(1)

    def trainer(start, x, y):
        p = {k: v.clone().requires_grad_(True) for k, v in start.items()}
        if args.optimizer == "sgd":
            opt = torch.optim.SGD(p.values(), lr=0.01, momentum=0.9)
        else:
            opt = torch.optim.AdamW(p.values(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

        def step():
            opt.zero_grad(set_to_none=True)
            losses = per_organism_loss(p, x, y)
            losses.sum().backward()  # SUM over organisms of each one's mean loss
            opt.step()
            return losses.detach()

        return step

    # ---- timing -------------------------------------------------------
    step = trainer(params0, x, y)
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        last = step()
    seconds = time.perf_counter() - start

    org_steps = P * args.steps
    print(json.dumps({
        "framework": "pytorch",
        "version": torch.__version__,
        "model": args.model,
        "optimizer": args.optimizer,
        "population": P,
        "batch": B,
        "steps": args.steps,
        "threads": threads,
        "variant": "stacked [P, out, in] weights, baddbmm/bmm, autograd, torch.optim",
        "seconds": round(seconds, 6),
        "organism_steps_per_s": round(org_steps / seconds, 1),
        "gflops": round(org_steps * flops_per_step(m, B) / seconds / 1e9, 3),
        "final_train_loss": round(float(last.mean()), 6),
    }), flush=True)

    if args.check:
        n = max(args.steps, 20)
        step = trainer(params0, x, y)
        curve = torch.stack([step() for _ in range(n)])  # [n, P]
        alone_step = trainer({k: v[:1] for k, v in params0.items()}, x[:1], y[:1])
        alone = torch.stack([alone_step()[0] for _ in range(n)])
        first, final = float(curve[0].mean()), float(curve[-1].mean())
        diff = float((alone - curve[:, 0]).abs().max())
        falls = int((curve[-1] < curve[0]).sum())
        ok = final < first and falls == P and diff < 1e-3 * max(1.0, first)
        print(
            f"check pytorch {args.model} {args.optimizer}: mean loss {first:.4f} -> {final:.4f} over {n} steps, "
            f"falls for {falls}/{P} organisms; organism 0 alone vs in population: max |dloss| {diff:.2e} "
            f"-> {'OK' if ok else 'FAILED'}",
            file=sys.stderr,
        )
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
