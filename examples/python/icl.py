"""In-context learning from Python: the burstiness conditions of
scenarios/icl-burstiness.toml on a reduced budget (40 steps), read back and
plotted.

    python examples/python/icl.py [RUN_DIR]

The full experiment and its measured results: docs/src/experiments/icl.md.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import lineage

out = sys.argv[1] if len(sys.argv) > 1 else "runs/icl-py"

scenario = lineage.validate("scenarios/icl-burstiness.toml")
scenario["lifetime"].update(steps=40, budget=2560, eval_every=20)

experiment = lineage.run(scenario, out=out, progress=False)
print(experiment.report().to_string())

# In-context accuracy on novel classes along the lifetime: one thin line
# per seed, the median over seeds thick.
probes = experiment.probes
icl = probes[(probes["probe"] == "icl_novel") & (probes["metric"] == "accuracy")]
fig, ax = plt.subplots()
for i, condition in enumerate(experiment.conditions):
    mine = icl[icl["condition"] == condition]
    for _, one in mine.groupby("seed"):
        ax.plot(one["step"], one["value"], color=f"C{i}", alpha=0.3)
    median = mine.groupby("step")["value"].median()
    ax.plot(median.index, median.values, color=f"C{i}", linewidth=2, label=condition)
ax.set_xlabel("step")
ax.set_ylabel("in-context accuracy (novel classes)")
ax.legend()
fig.savefig(f"{out}/icl.png")
print(f"wrote {out}/icl.png")
