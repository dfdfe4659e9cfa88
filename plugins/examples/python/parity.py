"""Noisy parity, and a fitness that pays for wiring: a plugin written in Python.

Loaded by scenarios/python-parity.toml as ``[plugins.py] library =
"python:../plugins/examples/python/parity.py"``. It offers:

- ``Parity``, an environment: ``bits`` random signs (+1 or -1, plus
  Gaussian noise of ``noise``) labelled by their parity, the classic task
  a network cannot solve without a hidden layer. Its probe set ``clean``
  holds every pattern without noise, ``repeats`` times.
- ``frugal``, a fitness function: held-out accuracy after the lifetime,
  minus ``cost`` times the mean absolute weight of the learned network
  (a wiring cost, as in the evolution of efficient networks).
- ``measures``, a suite recording the two terms apart.

Both functions ask the host for what they need (held-out data, a forward
pass of the learned network, its weights) with NumPy in and out.
"""

import numpy as np

import lineage


@lineage.environment
class Parity:
    """Parity of noisy random signs."""

    def __init__(self, config):
        self.bits = int(config.get("bits", 3))
        self.noise = float(config.get("noise", 0.2))
        self.heldout = int(config.get("heldout", 512))
        self.repeats = int(config.get("repeats", 8))
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits: expected 1 to 16, found {self.bits}")
        if self.noise < 0:
            raise ValueError(f"noise: expected a non-negative number, found {self.noise}")

    def describe(self):
        clean = lineage.Probe("clean", examples=self.repeats * 2**self.bits)
        return lineage.Task.classification(
            inputs=self.bits, classes=2, heldout=self.heldout, probes=[clean]
        )

    def fill(self, part, seed, n):
        rng = np.random.default_rng(seed)
        if part == "clean":
            codes = np.arange(n) % 2**self.bits
            signs = (codes[:, None] >> np.arange(self.bits)) & 1
            noise = 0.0
        else:
            signs = rng.integers(0, 2, size=(n, self.bits))
            noise = self.noise * rng.standard_normal((n, self.bits))
        x = (2.0 * signs - 1.0) + noise
        return {"x": x, "labels": signs.sum(axis=1) % 2}


def accuracy_and_wiring(batch):
    layers = int(batch.config.get("layers", 2))
    accuracy = np.empty(len(batch))
    wiring = np.empty(len(batch))
    for i in range(len(batch)):
        data = batch.heldout(i)
        guesses = batch.outputs(i, data["x"]).argmax(axis=1)
        accuracy[i] = (guesses == data["labels"]).mean()
        weights = [batch.weights(i, f"layers.{k}.weight") for k in range(layers)]
        wiring[i] = np.mean(np.concatenate([np.abs(w).ravel() for w in weights]))
    return accuracy, wiring


@lineage.fitness(maximize=["frugal"], reads_weights=True)
def frugal(batch):
    """Held-out accuracy minus a wiring cost."""
    accuracy, wiring = accuracy_and_wiring(batch)
    return accuracy - float(batch.config.get("cost", 0.1)) * wiring


@lineage.suite(maximize=["accuracy"], minimize=["wiring"], reads_weights=True)
def measures(batch):
    """Held-out accuracy and mean absolute weight, apart."""
    accuracy, wiring = accuracy_and_wiring(batch)
    return np.stack([accuracy, wiring], axis=1)
