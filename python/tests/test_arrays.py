"""Weights and genomes as NumPy arrays, against the files `lineage export`
and the checkpoints hold."""

import json
import struct
import subprocess

import numpy as np
import pytest

import lineage
from conftest import cli, learning, onemax


def read_safetensors(path):
    """A safetensors file's tensors (f32 only), read by hand: its format is
    a little-endian u64 header length, a JSON header, then the data."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        assert t["dtype"] == "F32"
        out[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(t["shape"])
    return out


def test_weights_round_trip_against_the_exported_safetensors(tmp_path, lineage_bin):
    scenario = learning(generations=2)
    scenario["lifetime"]["prune"] = {"fraction": 0.3}
    run = lineage.run(scenario, out=tmp_path / "r", progress=False)
    organism = int(run.organisms["id"].iloc[-1])
    cli(lineage_bin, "export", tmp_path / "r", "--organism", organism, "--out", tmp_path / "x")
    for which, file in (("learned", "final"), ("birth", "birth")):
        got = run.weights(organism, which)
        want = read_safetensors(tmp_path / "x" / f"{file}.safetensors")
        assert set(want) <= set(got)
        for name, array in want.items():
            assert got[name].dtype == np.float32 and got[name].shape == array.shape
            np.testing.assert_array_equal(got[name], array)
    learned, birth = run.weights(organism), run.weights(organism, "birth")
    assert not np.array_equal(learned["layers.0.weight"], birth["layers.0.weight"])
    with pytest.raises(ValueError, match="birth"):
        run.weights(organism, "middle")
    with pytest.raises(lineage.RunError, match="no checkpoint holds organism"):
        run.weights(10**9)


def test_masks_are_booleans_where_the_weights_are_zero(tmp_path):
    scenario = learning(generations=1)
    scenario["lifetime"]["develop"] = {"matrix": [{"name": "layers.0.weight", "density": 0.5}]}
    run = lineage.run(scenario, out=tmp_path / "r", progress=False)
    w = run.weights(int(run.organisms["id"].iloc[0]), "birth")
    mask = w["layers.0.weight.mask"]
    assert mask.dtype == bool and mask.shape == w["layers.0.weight"].shape
    assert 0 < mask.mean() < 1
    assert np.all(w["layers.0.weight"][~mask] == 0)


def test_genomes_are_the_checkpoints(tmp_path):
    run = lineage.run(onemax(generations=3), out=tmp_path / "r", progress=False)
    g = run.genomes(2)
    assert g["bits"].dtype == bool and g["bits"].shape == (40, 64)
    assert g["id"].dtype == np.uint64 and len(np.unique(g["id"])) == 40
    # The fitness recorded for generation 2 is each genome's count of ones.
    organisms = run.organisms
    mine = organisms[organisms["generation"] == 2].set_index("id")
    for i, bits in zip(g["id"], g["bits"]):
        if int(i) in mine.index:
            assert mine.loc[int(i), "onemax"] == bits.sum()
    with pytest.raises(lineage.RunError, match="no checkpoint of generation 99"):
        run.genomes(99)
