"""Converts the UCI optical-recognition handwritten digits, as scikit-learn
distributes them (sklearn/datasets/data/digits.csv.gz), into digits.npz:
x, uint8 [1797, 64] (8x8 images, pixels 0-16, row-major), and y, int64 [1797]
(the digit). Run once; README.md says where the source came from.

    python convert.py path/to/digits.csv.gz
"""

import sys

import numpy as np


def main(source: str) -> None:
    table = np.loadtxt(source, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise SystemExit(f"{source}: expected 1797 rows of 65 values, found {table.shape}")
    x = table[:, :64]
    y = table[:, 64]
    if x.min() < 0 or x.max() > 16 or set(np.unique(y)) != set(range(10)):
        raise SystemExit(f"{source}: pixels must be 0-16 and labels 0-9")
    np.savez_compressed("digits.npz", x=x.astype(np.uint8), y=y)


if __name__ == "__main__":
    main(sys.argv[1])
