"""Plot a results CSV of the paper's experiment scripts (scripts/paper-*.sh).

Usage: python3 scripts/paper-plot.py RESULTS.csv OUT.png [--logx]

Columns: run, the varied quantity (its name labels the x axis: meta_iterations,
inner_updates, inner_batch, outer_step, ...), shots, accuracy, ci95 (percent). One line per run,
one panel per shot count, 95% intervals as error bars.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str, logx: bool) -> None:
    with open(csv_path) as f:
        reader = csv.DictReader(f)
        x_name = reader.fieldnames[1]
        rows = list(reader)
    shots = list(dict.fromkeys(r["shots"] for r in rows))
    fig, axes = plt.subplots(1, len(shots), figsize=(5.5 * len(shots), 4), squeeze=False)
    for ax, k in zip(axes[0], shots):
        for run in dict.fromkeys(r["run"] for r in rows):
            pts = [r for r in rows if r["run"] == run and r["shots"] == k]
            ax.errorbar(
                [float(r[x_name]) for r in pts],
                [float(r["accuracy"]) for r in pts],
                yerr=[float(r["ci95"]) for r in pts],
                marker="o",
                capsize=3,
                label=run,
            )
        ax.set_title(f"5-way {k}-shot, held-out characters")
        ax.set_xlabel(x_name.replace("_", " "))
        ax.set_ylabel("accuracy (%, 95% interval)")
        if logx:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--logx"]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], "--logx" in sys.argv[1:])
