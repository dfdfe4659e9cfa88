"""Model Connectomes from Python: scenarios/connectome-pruning.toml (a
pruning lineage, then its connectome against random wiring and a dense
network at low data) on a reduced budget, read back and plotted.

    python examples/python/connectomes.py [RUN_DIR]

The full experiment and its measured results: docs/src/experiments/connectomes.md.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import lineage

out = sys.argv[1] if len(sys.argv) > 1 else "runs/connectomes-py"

experiment = lineage.run(
    "scenarios/connectome-pruning.toml", out=out, overrides={"generations": 2}, progress=False
)
print(experiment.report(baseline="NoConnectome").to_string())

# Held-out loss at the end of every lifetime of the last generation, by
# condition: every organism of every seed, and the median.
organisms = experiment.organisms
last = organisms[organisms["generation"] == organisms.groupby(["condition", "seed"])["generation"].transform("max")]
fig, ax = plt.subplots()
for i, condition in enumerate(experiment.conditions):
    values = last[last["condition"] == condition]["final_heldout"]
    ax.scatter([i] * len(values), values, color=f"C{i}", alpha=0.5, s=8)
    ax.hlines(values.median(), i - 0.3, i + 0.3, color=f"C{i}")
ax.set_xticks(range(len(experiment.conditions)), experiment.conditions, rotation=20)
ax.set_ylabel("held-out loss after the lifetime")
fig.tight_layout()
fig.savefig(f"{out}/connectomes.png")
print(f"wrote {out}/connectomes.png")
