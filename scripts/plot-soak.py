#!/usr/bin/env python3
"""Plots the soak's samples (tests/t91_soak.rs with KUBOARD_SOAK_CSV) as SVG line charts.

    scripts/plot-soak.py SAMPLES.csv SNAPSHOTS.csv OUT_DIR

Writes OUT_DIR/store.svg (state machine, raft log and snapshot bytes of each member), rss.svg,
longest-write.svg (the longest write of each 5 s interval against the election timeout) and
snapshot-time.svg (every snapshot build, in order). Standard library only.
"""

import csv
import os
import sys
from html import escape

WIDTH, HEIGHT = 800, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
COLOURS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#c53030", "#718096"]
MIB = 1024 * 1024


def nice_ceiling(value):
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above value."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def chart(title, x_label, y_label, series, limit=None):
    """series: [(name, [(x, y), ...])]; limit: (name, y) drawn as a dashed line."""
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points]
    if limit:
        ys.append(limit[1])
    x_max = max(xs) if xs else 1
    y_max = nice_ceiling(max(ys) * 1.05 if ys else 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + plot_w * (x / x_max if x_max else 0)

    def py(y):
        return TOP + plot_h * (1 - y / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for tick in range(5):
        y = y_max * tick / 4
        out.append(
            f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{WIDTH - RIGHT}" y2="{py(y):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>'
        )
    for tick in range(6):
        x = x_max * tick / 5
        out.append(
            f'<text x="{px(x):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{x:.0f}</text>'
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    if limit:
        out.append(
            f'<line x1="{LEFT}" y1="{py(limit[1]):.1f}" x2="{WIDTH - RIGHT}" y2="{py(limit[1]):.1f}" '
            'stroke="#c53030" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - RIGHT}" y="{py(limit[1]) - 4:.1f}" text-anchor="end" fill="#c53030">'
            f"{escape(limit[0])}</text>"
        )
    for index, (name, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        legend_x = LEFT + 10 + index * 120
        out.append(
            f'<rect x="{legend_x}" y="{TOP - 12}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{TOP - 3}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: plot-soak.py SAMPLES.csv SNAPSHOTS.csv OUT_DIR")
    samples_path, snapshots_path, out_dir = sys.argv[1:]
    with open(samples_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        sys.exit(f"{samples_path}: no samples")
    snapshots = []
    if os.path.exists(snapshots_path):
        with open(snapshots_path, newline="") as handle:
            snapshots = [(int(r["snapshot"]), float(r["duration_ms"])) for r in csv.DictReader(handle)]
    os.makedirs(out_dir, exist_ok=True)
    minutes = [float(r["seconds"]) / 60 for r in rows]

    def per_member(column, scale):
        return [
            (f"member {m}", [(t, float(r[f"{column}_{m}"]) / scale) for t, r in zip(minutes, rows)])
            for m in (1, 2, 3)
        ]

    # The state machine of every member; the raft log and snapshot files of member 1 (the others
    # follow it closely).
    store = per_member("state_machine_bytes", MIB)
    store = [(f"state machine {name[-1]}", points) for name, points in store]
    store.append(("raft log 1", per_member("raft_log_bytes", MIB)[0][1]))
    store.append(("snapshots 1", per_member("snapshots_bytes", MIB)[0][1]))
    charts = {
        "store.svg": chart("State machine (sled) and raft log on disk", "minutes", "MiB", store),
        "rss.svg": chart("Resident memory per replica", "minutes", "MiB", per_member("rss_bytes", MIB)),
        "longest-write.svg": chart(
            "Longest write of each 5 s interval",
            "minutes",
            "ms",
            [("etcd API put", [(t, float(r["longest_write_ms"])) for t, r in zip(minutes, rows)])],
            limit=("election timeout 800 ms", 800.0),
        ),
        "snapshot-time.svg": chart(
            "Time to build each snapshot (all members, in order)", "snapshot", "ms", [("build", snapshots)]
        ),
    }
    for name, svg in charts.items():
        with open(os.path.join(out_dir, name), "w") as handle:
            handle.write(svg)
        print(f"wrote {os.path.join(out_dir, name)}")


if __name__ == "__main__":
    main()
