"""Compare fleet runs from their cards: the held-out MSE after k steps per round, and the
summary line of the first run.

    python -m anole_fleet.report target/fleet-quick/reptile target/fleet-quick/fedavg
"""

import json
import sys
from pathlib import Path


def load(state):
    return json.loads((Path(state) / "latest" / "card.json").read_text())


def summary(card) -> str:
    h = card["history"]
    rounds = [r for r in h if r["round"] > 0]
    uplink = [r["uplink_bytes_mean"] for r in rounds if r["accepted"]]
    b = round(sum(uplink) / len(uplink)) if uplink else 0
    k = card["held_out"]["steps"]
    return (f"fleet sine: held-out MSE after {k} steps {h[0]['held_out_mse']:.4f} -> "
            f"{h[-1]['held_out_mse']:.4f} over {len(rounds)} rounds, {b} bytes uplink per "
            f"client per round")


def table(cards, names):
    rounds = min(c["round"] for c in cards)
    marks = sorted({0, 1, 2, 5} | set(range(10, rounds + 1, 10)) | {rounds})
    head = "| round | " + " | ".join(f"{n} held-out MSE" for n in names) + " |"
    lines = [head, "|---:|" + "---:|" * len(names)]
    for r in (m for m in marks if m <= rounds):
        cells = [f"{c['history'][r]['held_out_mse']:.4f}" for c in cards]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cards = [load(a) for a in argv]
    names = [Path(a).name for a in argv]
    print(table(cards, names))
    for c, n in zip(cards, names):
        up = [r["uplink_bytes_mean"] for r in c["history"][1:] if r["accepted"]]
        f = c["fleet"]
        how = (f"{f['strategy']}, eps {f['epsilon']} {f['anneal']}, {f['aggregator']}"
               if f["strategy"] == "reptile" else "fedavg")
        print(f"{n}: {c['history'][0]['held_out_mse']:.4f} -> {c['history'][-1]['held_out_mse']:.4f}"
              f" over {c['round']} rounds ({how}, top-k {f['top-k'] or 'off'}),"
              f" mean uplink {sum(up) / max(len(up), 1):.0f} B per client per round")
    print(summary(cards[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
