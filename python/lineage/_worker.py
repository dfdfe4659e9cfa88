"""The worker a plugin written in Python runs in: ``python -m lineage._worker``.

It speaks the frames of ``isolation = "process"`` (core/plugin/src/isolate/
wire.rs) on its standard input and a copy of its standard output: ``LOAD``
(the plugin file's bytes, the very bytes the engine hashed), ``CREATE``,
one ``EVALUATE`` per generation, and for an environment ``ENV_DESCRIBE``
and one ``ENV_FILL`` per data set, answered with ``LOADED``, ``CREATED``
(or ``CREATE_FAILED``), ``EVALUATED``, ``DESCRIBED`` and ``FILLED``. While
it evaluates, the plugin's questions to the host (``ASK_*``) go out on the
same pipe and their answers (``REPLY_OK`` or ``REPLY_ERR``) come back.
Standard output proper is pointed at standard error first, so a plugin's
``print`` cannot corrupt the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import traceback
from typing import Any, List, Optional, Tuple

import numpy as np

from . import plugin

LOAD, CREATE, EVALUATE, ENV_DESCRIBE, ENV_FILL = 1, 2, 3, 4, 5
REPLY_OK, REPLY_ERR = 10, 11
LOADED, LOAD_FAILED, CREATED, CREATE_FAILED, EVALUATED = 20, 21, 22, 23, 24
DESCRIBED, FILLED = 25, 26
FILL_TRAIN, FILL_HELDOUT, FILL_PROBE = 1, 2, 3
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

    def numbers(self, values: Any, dtype: str) -> "Writer":
        values = np.ascontiguousarray(values, dtype=dtype)
        self.u64(values.size)
        self.parts.append(values.tobytes())
        return self

    def f64s(self, values: Any) -> "Writer":
        return self.numbers(values, "<f8")

    def f32s(self, values: Any) -> "Writer":
        return self.numbers(values, "<f4")

    def u32s(self, values: Any) -> "Writer":
        return self.numbers(values, "<u4")

    def frame(self) -> bytes:
        body = b"".join(self.parts)
        return struct.pack("<Q", len(body)) + body


def load(path: str, source: bytes, module: Optional[str]) -> Writer:
    """Runs the plugin file (the very bytes the engine hashed), or imports
    ``module`` (whose file the engine hashed), and describes what it
    registered. A file's folder goes on ``sys.path`` first, so that it can
    import modules beside it."""
    plugin.REGISTRY.clear()
    try:
        if module is not None:
            importlib.import_module(module)
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
            code = compile(source, path, "exec")
            namespace = {"__name__": "lineage_plugin", "__file__": path}
            exec(code, namespace)
    except BaseException:  # the plugin's own failure, reported
        return failed_load(f"python plugin {module or path} failed to load:\n{traceback.format_exc()}")
    if not plugin.REGISTRY:
        return failed_load(
            f"python plugin {path} registers nothing: decorate functions with "
            "@lineage.fitness(...) or @lineage.suite(...), or classes with @lineage.environment"
        )
    name = module.rsplit(".", 1)[-1] if module else os.path.splitext(os.path.basename(path))[0]
    out = Writer(LOADED).str(name).str("python").str(f"Python plugin {os.path.basename(path)}")
    out.u32(ABI_VERSION).u64(len(plugin.REGISTRY))
    for o in plugin.REGISTRY.values():
        out.str(o.name).u8(o.kind).str(o.description).u8(int(o.reads_weights))
        out.u64(len(o.metrics))
        for metric, direction in o.metrics:
            out.str(metric).u8(direction)
    return out


def failed_load(message: str) -> Writer:
    return Writer(LOAD_FAILED).u8(FAIL_OTHER).u32(0).str(message)


class Made:
    """A created instance: the offering, its configuration and, for an
    environment, the object and the task it described."""

    def __init__(self, offering: plugin.Offering, config: dict) -> None:
        self.offering = offering
        self.config = config
        self.environment: Any = None
        self.task: Optional[plugin.Task] = None


def create(r: Reader) -> Tuple[Writer, Optional[Made]]:
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
    made = Made(offerings[index], config)
    if made.offering.kind == plugin.ENVIRONMENT:
        try:
            made.environment = made.offering.function(config)
        except Exception:  # noqa: BLE001 - the plugin's refusal, reported
            return Writer(CREATE_FAILED).str(failure()), None
    return Writer(CREATED), made


class Refused(Exception):
    """What the worker finds wrong with what the plugin returned: its
    message alone, without the worker's frames."""


def failure() -> str:
    """The current exception's last frames, for a message (the message
    alone for the worker's own checks)."""
    error = sys.exc_info()[1]
    if isinstance(error, Refused):
        return str(error)
    return traceback.format_exc(limit=-3).strip()


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


class Channel:
    """The worker's two pipes: frames in from the engine, frames out."""

    def __init__(self, source: Any, output: Any) -> None:
        self.source = source
        self.output = output

    def receive(self) -> Optional[Reader]:
        head = self.source.read(8)
        if len(head) < 8:
            return None
        (n,) = struct.unpack("<Q", head)
        body = self.source.read(n)
        if len(body) < n:
            return None
        return Reader(body)

    def send(self, frame: Writer) -> None:
        self.output.write(frame.frame())

    def ask(self, tag: int, fill: Any) -> Reader:
        """Sends a service request and waits for the engine's answer: a
        reader of its payload, or ``HostError`` with the engine's message."""
        request = Writer(tag)
        fill(request)
        self.send(request)
        r = self.receive()
        if r is None:
            raise SystemExit("the engine closed the channel")
        reply = r.u8()
        if reply == REPLY_OK:
            return r
        if reply == REPLY_ERR:
            raise plugin.HostError(r.str())
        raise SystemExit(f"lineage python worker: reply frame {reply} to a service request")


def evaluate(r: Reader, made: Made, channel: Channel) -> Writer:
    offering, config = made.offering, made.config
    generation = r.u32()
    metrics = r.u64()
    ids = r.array("<u8", 8)
    n = len(ids)
    bits, genes = genomes(r, n)
    batch = plugin.Batch(
        generation=generation, ids=ids.copy(), genes=genes, bits=bits, config=config, _ask=channel.ask
    )
    try:
        if offering.kind == plugin.ENVIRONMENT:
            raise Refused(f"`{offering.name}` is an environment, not a fitness function or suite")
        scores = np.asarray(offering.function(batch), dtype="<f8")
        if scores.ndim == 1 and metrics == 1:
            scores = scores.reshape(n, 1)
        if scores.shape != (n, metrics):
            raise Refused(
                f"returned scores of shape {scores.shape}; {n} organisms x {metrics} metrics need ({n}, {metrics})"
            )
    except Exception:  # noqa: BLE001 - reported to the engine
        return Writer(EVALUATED).u8(1).str(failure()).u64(0).f64s(np.full(n * metrics, np.nan))
    return Writer(EVALUATED).u8(0).str("").u64(n * metrics).f64s(scores.reshape(-1))


def task_of(made: Made) -> plugin.Task:
    if made.environment is None:
        raise Refused(f"`{made.offering.name}` is not an environment")
    if made.task is None:
        task = made.environment.describe()
        if not isinstance(task, plugin.Task):
            raise Refused(f"describe() returned {type(task).__name__}, not a lineage.Task")
        try:
            task.check()
        except ValueError as e:
            raise Refused(f"describe() returned a task that does not hold together: {e}") from None
        made.task = task
    return made.task


def describe(made: Made) -> Writer:
    try:
        t = task_of(made)
        direction = None if t.direction is None else np.asarray(t.direction, dtype="<f4")
        if direction is not None and direction.ndim != 1:
            raise Refused(f"the task's direction has shape {direction.shape}; it is one vector")
    except Exception:  # noqa: BLE001 - the plugin's failure, reported
        return Writer(DESCRIBED).u8(1).str(failure())
    out = Writer(DESCRIBED).u8(0).str("")
    out.u32(plugin._KINDS[t.kind]).u64(t.inputs).u64(t.outputs).u64(t.steps).u64(t.heldout)
    out.u64(len(t.probes)).u32(0 if direction is None else 1).u64(len(t.probes))
    for p in t.probes:
        out.str(p.name).u64(p.examples)
        if p.choices is None:
            out.u8(0)
        else:
            out.u8(1).u32s(p.choices)
    if direction is None:
        out.u8(0)
    else:
        out.u8(1).f32s(direction)
    return out


#: What each kind of task fills, with the shape of one example's values
#: (``steps`` and ``inputs`` filled in from the request).
FIELDS = {
    1: ("x", "y"),
    2: ("x", "labels"),
    3: ("x", "labels"),
    4: ("tokens",),
}


def fill(r: Reader, made: Made) -> Writer:
    what, index, seed = r.u32(), r.u64(), r.u64()
    kind, n, steps, nx, ny, nlabels, ntokens = r.u32(), r.u64(), r.u64(), r.u64(), r.u64(), r.u64(), r.u64()
    try:
        t = task_of(made)
        if what == FILL_TRAIN:
            part = "train"
        elif what == FILL_HELDOUT:
            part = "heldout"
        elif what == FILL_PROBE and index < len(t.probes):
            part = t.probes[index].name
        else:
            raise Refused(f"the engine asked for an unknown part ({what}, {index})")
        data = made.environment.fill(part, seed, n)
        if not isinstance(data, dict):
            raise Refused(f"fill() returned {type(data).__name__}, not a dict of arrays")
        wanted = FIELDS.get(kind, ())
        extra = sorted(set(data) - set(wanted))
        if extra:
            raise Refused(f"fill() returned {extra}; a {t.kind} task fills {list(wanted)}")
        sizes = {"x": nx, "y": ny, "labels": nlabels, "tokens": ntokens}
        arrays = {}
        for key in wanted:
            if key not in data:
                raise Refused(f"fill({part!r}) returned no {key!r}; a {t.kind} task fills {list(wanted)}")
            value = np.asarray(data[key])
            if value.size != sizes[key]:
                raise Refused(
                    f"fill({part!r}) returned {key!r} of shape {value.shape} ({value.size} values); "
                    f"{n} examples need {sizes[key]}"
                )
            if key in ("labels", "tokens"):
                if not np.issubdtype(value.dtype, np.integer):
                    raise Refused(f"fill({part!r}) returned {key!r} of {value.dtype}; they are integers")
                if value.size and (value < 0).any():
                    raise Refused(f"fill({part!r}) returned negative {key!r}")
                arrays[key] = value.astype("<u4")
            else:
                arrays[key] = value
    except Exception:  # noqa: BLE001 - the plugin's failure, reported
        return Writer(FILLED).u8(1).str(failure())
    out = Writer(FILLED).u8(0).str("").u64(n)
    out.f32s(arrays.get("x", ())).f32s(arrays.get("y", ()))
    out.u32s(arrays.get("labels", ())).u32s(arrays.get("tokens", ()))
    return out


def serve(module: Optional[str] = None) -> None:
    output = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    channel = Channel(sys.stdin.buffer, output)
    made: Optional[Made] = None
    while True:
        r = channel.receive()
        if r is None:
            return
        tag = r.u8()
        if tag == LOAD:
            path = r.str()
            reply = load(path, r.bytes(), module)
        elif tag == CREATE:
            reply, made = create(r)
        elif made is None:
            raise SystemExit(f"lineage python worker: frame {tag} before CREATE")
        elif tag == EVALUATE:
            reply = evaluate(r, made, channel)
        elif tag == ENV_DESCRIBE:
            reply = describe(made)
        elif tag == ENV_FILL:
            reply = fill(r, made)
        else:
            raise SystemExit(f"lineage python worker: unknown frame {tag}")
        channel.send(reply)


if __name__ == "__main__":
    # `--module package.module`: the plugin is a module to import.
    args = sys.argv[1:]
    serve(args[1] if len(args) == 2 and args[0] == "--module" else None)
