"""The worker a plugin written in Python runs in: ``python -m lineage._worker``.

It speaks the frames of ``isolation = "process"`` (core/plugin/src/isolate/
wire.rs) on its standard input and a copy of its standard output: ``LOAD``
(the plugin file's bytes, the very bytes the engine hashed), ``CREATE``, and
one ``EVALUATE`` per generation, answered with ``LOADED``, ``CREATED`` (or
``CREATE_FAILED``) and ``EVALUATED``. Standard output proper is pointed at
standard error first, so a plugin's ``print`` cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import traceback
from typing import List, Optional, Tuple

import numpy as np

from . import plugin

LOAD, CREATE, EVALUATE = 1, 2, 3
LOADED, LOAD_FAILED, CREATED, CREATE_FAILED, EVALUATED = 20, 21, 22, 23, 24
FAIL_OTHER = 5
ABI_VERSION = 4


class Reader:
    """A frame's fields, little-endian, as wire.rs writes them."""

    def __init__(self, body: bytes) -> None:
        self.body = memoryview(body)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.body):
            raise ValueError("a truncated frame")
        out = self.body[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def bytes(self) -> bytes:
        return bytes(self.take(self.u64()))

    def str(self) -> str:
        return self.bytes().decode("utf-8")

    def array(self, dtype: str, size: int) -> np.ndarray:
        n = self.u64()
        return np.frombuffer(self.take(n * size), dtype=dtype)


class Writer:
    def __init__(self, tag: int) -> None:
        self.parts: List[bytes] = [bytes([tag])]

    def u8(self, v: int) -> "Writer":
        self.parts.append(bytes([v]))
        return self

    def u32(self, v: int) -> "Writer":
        self.parts.append(struct.pack("<I", v))
        return self

    def u64(self, v: int) -> "Writer":
        self.parts.append(struct.pack("<Q", v))
        return self

    def str(self, v: str) -> "Writer":
        data = v.encode("utf-8")
        self.u64(len(data))
        self.parts.append(data)
        return self

    def f64s(self, values: np.ndarray) -> "Writer":
        values = np.ascontiguousarray(values, dtype="<f8")
        self.u64(values.size)
        self.parts.append(values.tobytes())
        return self

    def frame(self) -> bytes:
        body = b"".join(self.parts)
        return struct.pack("<Q", len(body)) + body


def load(path: str, source: bytes) -> Writer:
    """Runs the plugin file and describes what it registered."""
    plugin.REGISTRY.clear()
    try:
        code = compile(source, path, "exec")
        namespace = {"__name__": "lineage_plugin", "__file__": path}
        exec(code, namespace)
    except BaseException:  # the plugin's own failure, reported
        return (
            Writer(LOAD_FAILED)
            .u8(FAIL_OTHER)
            .u32(0)
            .str(f"python plugin {path} failed to load:\n{traceback.format_exc()}")
        )
    if not plugin.REGISTRY:
        return (
            Writer(LOAD_FAILED)
            .u8(FAIL_OTHER)
            .u32(0)
            .str(
                f"python plugin {path} registers nothing: decorate functions with "
                "@lineage.fitness(...) or @lineage.suite(...)"
            )
        )
    name = os.path.splitext(os.path.basename(path))[0]
    out = Writer(LOADED).str(name).str("python").str(f"Python plugin {os.path.basename(path)}")
    out.u32(ABI_VERSION).u64(len(plugin.REGISTRY))
    for o in plugin.REGISTRY.values():
        out.str(o.name).u8(o.kind).str(o.description).u8(0).u64(len(o.metrics))
        for metric, direction in o.metrics:
            out.str(metric).u8(direction)
    return out


def create(r: Reader) -> Tuple[Writer, Optional[Tuple[plugin.Offering, dict]]]:
    index = r.u64()
    toml = r.str()
    offerings = list(plugin.REGISTRY.values())
    if index >= len(offerings):
        return Writer(CREATE_FAILED).str(f"no offering {index}"), None
    try:
        from . import _lineage

        config = json.loads(_lineage.toml_to_json(toml)) if toml.strip() else {}
    except Exception as e:  # noqa: BLE001 - reported to the engine
        return Writer(CREATE_FAILED).str(f"its configuration: {e}"), None
    return Writer(CREATED), (offerings[index], config)


def genomes(r: Reader, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """The batch's genomes, decoded at once: every genome of a run has the
    same layout (bit count, words, genes), so the records are rows of one
    u64 array, ``[n_bits, words, w..., genes, g...]``."""
    if n == 0:
        return np.zeros((0, 0), dtype=bool), np.zeros((0, 0))
    start = r.pos
    n_bits, w = struct.unpack_from("<QQ", r.body, start)
    (g,) = struct.unpack_from("<Q", r.body, start + 16 + 8 * w)
    width = 3 + w + g
    rows = np.frombuffer(r.take(8 * width * n), dtype="<u8").reshape(n, width)
    if not ((rows[:, 0] == n_bits).all() and (rows[:, 1] == w).all() and (rows[:, 2 + w] == g).all()):
        raise ValueError("genomes of different layouts in one batch")
    words = np.ascontiguousarray(rows[:, 2 : 2 + w])
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :n_bits].astype(bool)
    genes = np.ascontiguousarray(rows[:, 3 + w :]).view("<f8")
    return bits, genes


def evaluate(r: Reader, made: Tuple[plugin.Offering, dict]) -> Writer:
    offering, config = made
    generation = r.u32()
    metrics = r.u64()
    ids = r.array("<u8", 8)
    n = len(ids)
    bits, genes = genomes(r, n)
    batch = plugin.Batch(generation=generation, ids=ids.copy(), genes=genes, bits=bits, config=config)
    try:
        scores = np.asarray(offering.function(batch), dtype="<f8")
        if scores.ndim == 1 and metrics == 1:
            scores = scores.reshape(n, 1)
        if scores.shape != (n, metrics):
            raise ValueError(
                f"returned scores of shape {scores.shape}; {n} organisms x {metrics} metrics need ({n}, {metrics})"
            )
    except Exception:  # noqa: BLE001 - reported to the engine
        message = traceback.format_exc(limit=-3).strip()
        return Writer(EVALUATED).u8(1).str(message).u64(0).f64s(np.full(n * metrics, np.nan))
    return Writer(EVALUATED).u8(0).str("").u64(n * metrics).f64s(scores.reshape(-1))


def serve() -> None:
    output = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    source = sys.stdin.buffer
    made = None
    while True:
        head = source.read(8)
        if len(head) < 8:
            return
        (n,) = struct.unpack("<Q", head)
        body = source.read(n)
        if len(body) < n:
            return
        r = Reader(body)
        tag = r.u8()
        if tag == LOAD:
            path = r.str()
            reply = load(path, r.bytes())
        elif tag == CREATE:
            reply, made = create(r)
        elif tag == EVALUATE:
            if made is None:
                raise SystemExit("EVALUATE before CREATE")
            reply = evaluate(r, made)
        else:
            raise SystemExit(f"lineage python worker: frame {tag} is not supported yet")
        output.write(reply.frame())


if __name__ == "__main__":
    serve()
