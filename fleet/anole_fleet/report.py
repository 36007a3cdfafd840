"""Compare fleet runs from their cards: the held-out result per round (sine: MSE after k steps;
Omniglot: N-way K-shot accuracy with its 95% interval), and the summary line of the first run.

    python -m anole_fleet.report target/fleet-quick/reptile target/fleet-quick/fedavg
    python -m anole_fleet.report --plot docs/fleet-omniglot.png target/fleet-omniglot/*
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np


def load(state):
    card = Path(state) / "latest" / "card.json"
    if not card.exists():
        raise SystemExit(f"anole_fleet.report: {card} missing: no completed round in {state}")
    return json.loads(card.read_text())


def is_accuracy(card) -> bool:
    return "held_out_accuracy" in card["history"][0]


def uplink(card) -> int:
    """Mean bytes a client sent per round, over the rounds with accepted updates."""
    up = [r["uplink_bytes_mean"] for r in card["history"][1:] if r["accepted"]]
    return round(sum(up) / len(up)) if up else 0


def task_name(card) -> str:
    h = card["held_out"]
    return f"{h['ways']}-way {h['shots']}-shot accuracy"


def paired(card, round_=None):
    """The accuracy change from round 0 to ``round_`` (the last by default) over the same
    held-out episodes, and its 95% interval: (mean, half-width)."""
    h = card["history"]
    d = np.array(h[-1 if round_ is None else round_]["held_out_episodes"]) - np.array(
        h[0]["held_out_episodes"])
    return float(d.mean()), 1.96 * float(d.std(ddof=1)) / math.sqrt(len(d))


def summary(card) -> str:
    h = card["history"]
    rounds = len(h) - 1
    if is_accuracy(card):
        return (f"fleet omniglot: held-out {task_name(card)} "
                f"{100 * h[0]['held_out_accuracy']:.2f}% -> {100 * h[-1]['held_out_accuracy']:.2f}% "
                f"over {rounds} rounds, {uplink(card)} bytes uplink per client per round")
    k = card["held_out"]["steps"]
    return (f"fleet sine: held-out MSE after {k} steps {h[0]['held_out_mse']:.4f} -> "
            f"{h[-1]['held_out_mse']:.4f} over {rounds} rounds, {uplink(card)} bytes uplink per "
            f"client per round")


def table(cards, names):
    """Rows at marked rounds up to the longest run's last; a run that stopped earlier shows
    "—" past its last round."""
    rounds = max(c["round"] for c in cards)
    acc = is_accuracy(cards[0])
    if acc:
        marks = {0, 1, 2, 3} | set(range(5, rounds + 1, 5)) | {rounds}
        head = "| round | " + " | ".join(f"{n} accuracy (95% interval)" for n in names) + " |"
    else:
        marks = {0, 1, 2, 5} | set(range(10, rounds + 1, 10)) | {rounds}
        head = "| round | " + " | ".join(f"{n} held-out MSE" for n in names) + " |"
    lines = [head, "|---:|" + "---:|" * len(names)]
    for r in sorted(m for m in marks if m <= rounds):
        cells = []
        for c in cards:
            rec = c["history"][r] if r < len(c["history"]) else None
            if rec is None:
                cells.append("—")
            elif acc:
                cells.append(f"{100 * rec['held_out_accuracy']:.2f}% "
                             f"± {100 * rec['held_out_ci95']:.2f}")
            else:
                cells.append(f"{rec['held_out_mse']:.4f}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines.append("| uplink per client per round | " +
                 " | ".join(f"{uplink(c):,} B" for c in cards) + " |")
    return "\n".join(lines)


def plot(cards, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for c, n in zip(cards, names):
        h = c["history"]
        x = [r["round"] for r in h]
        if is_accuracy(c):
            y = np.array([100 * r["held_out_accuracy"] for r in h])
            ci = np.array([100 * r["held_out_ci95"] for r in h])
            ax.fill_between(x, y - ci, y + ci, alpha=0.15)
        else:
            y = [r["held_out_mse"] for r in h]
        ax.plot(x, y, marker=".", label=f"{n} ({uplink(c):,} B up per client per round)")
    c = cards[0]
    ax.set_xlabel("round")
    ax.set_ylabel(f"held-out {task_name(c)} (%)" if is_accuracy(c) else "held-out MSE")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("states", nargs="+", help="state directories of fleet runs")
    ap.add_argument("--plot", metavar="PNG", help="also plot the runs' curves")
    a = ap.parse_args(argv)
    cards = [load(s) for s in a.states]
    names = [Path(s).name for s in a.states]
    print(table(cards, names))
    for c, n in zip(cards, names):
        f, h = c["fleet"], c["history"]
        how = (f"{f['strategy']}, eps {f['epsilon']} {f['anneal']}, {f['aggregator']}"
               if f["strategy"] == "reptile" else "fedavg")
        if is_accuracy(c):
            d, ci = paired(c)
            result = (f"{100 * h[0]['held_out_accuracy']:.2f}% -> "
                      f"{100 * h[-1]['held_out_accuracy']:.2f}% ({100 * d:+.2f} points, 95% "
                      f"interval ±{100 * ci:.2f}, paired over {len(h[0]['held_out_episodes'])} "
                      f"held-out episodes)")
        else:
            result = f"{h[0]['held_out_mse']:.4f} -> {h[-1]['held_out_mse']:.4f}"
        print(f"{n}: {result} over {c['round']} rounds ({how}, top-k {f['top-k'] or 'off'}),"
              f" mean uplink {uplink(c)} B per client per round")
    if a.plot:
        plot(cards, names, a.plot)
    print(summary(cards[0]))


if __name__ == "__main__":
    main()
