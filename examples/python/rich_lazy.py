"""Rich and lazy learning from Python: the rank sweep of
scenarios/richlazy-rank.toml on a reduced budget (rank 1 against full rank,
2 seeds, 300 steps), read back and plotted.

    python examples/python/rich_lazy.py [RUN_DIR]

The full experiment and its measured results: docs/src/experiments/rich-lazy.md.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import lineage

out = sys.argv[1] if len(sys.argv) > 1 else "runs/richlazy-py"

# The shipped scenario as a dict, then reduced: the sweep's two ends, two
# seeds each, a short lifetime.
scenario = lineage.validate("scenarios/richlazy-rank.toml")
scenario["lifetime"].update(steps=300, eval_every=100, budget=9600)
scenario["conditions"] = [
    c for c in scenario["conditions"] if c["name"] in ("rank-1", "rank-64")
]
for c in scenario["conditions"]:
    c["seeds"] = [1, 2]

experiment = lineage.run(scenario, out=out, progress=False)
report = experiment.report(baseline="rank-64")
print(report.to_string())

# Every seed's weight change and kernel alignment, by rank: the spread, not
# only the means.
metrics = experiment.metrics
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
for ax, metric in zip(axes, ("weight_change", "kernel_alignment")):
    for i, condition in enumerate(experiment.conditions):
        mine = metrics[(metrics["condition"] == condition) & (metrics["metric"] == metric)]
        values = mine["value"]
        ax.scatter([i] * len(values), values, color=f"C{i}")
        ax.hlines(values.median(), i - 0.2, i + 0.2, color=f"C{i}")
    ax.set_xticks(range(len(experiment.conditions)), experiment.conditions)
    ax.set_title(metric)
fig.tight_layout()
fig.savefig(f"{out}/rich-lazy.png")
print(f"wrote {out}/rich-lazy.png")
