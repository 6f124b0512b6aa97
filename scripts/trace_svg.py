#!/usr/bin/env python3
"""Draws one chip's timeline from an emulator trace (`tilec run ... --trace FILE.json`) as
an SVG picture: a row per MXU (its pushes, runs of back-to-back pushes merged into busy
spans), a row per DMA lane (each transfer from issue to completion) and the chip's
semaphore-wait stalls, over a cycle axis. It shows at a glance whether the DMA runs
under the matrix units or the units wait for it.

    scripts/trace_svg.py TRACE.json -o OUT.svg [--chip N] [--start C] [--end C]
                         [--title TEXT] [--width PX]

Only the standard library; the same trace gives the same bytes.

docs/images/matmul_trace.svg is made by (docs/perf.md, "Kernels"):

    tilec run examples/kernels/matmul.tile --target v5e-like --torus 1x1 --mode timing \\
        --trace t.json
    scripts/trace_svg.py t.json -o docs/images/matmul_trace.svg \\
        --title "examples/kernels/matmul.tile (1024^3 bf16) on v5e-like"
"""
import argparse
import json
import sys
from xml.sax.saxutils import escape

COLORS = {"mxu": "#3b6fb6", "dma": "#e08a1e", "stall": "#c23b3b"}
ROW_H, ROW_GAP, LABEL_W, TOP, AXIS_H = 16, 4, 120, 46, 34


def load(path):
    with open(path) as f:
        trace = json.load(f)
    if "traceEvents" not in trace:
        raise SystemExit(f"{path}: not a Chrome trace (no traceEvents)")
    return trace


def tracks_of(trace, chip):
    """{track name: tid} of the chip's process."""
    names = {}
    for e in trace["traceEvents"]:
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e.get("pid") == chip:
            names[e["args"]["name"]] = e["tid"]
    if not names:
        raise SystemExit(f"the trace has no chip {chip}")
    return names


def spans(trace, chip, tid, merge_gap):
    """(start, end) cycle spans of one track, sorted; spans closer than merge_gap
    cycles are merged into one."""
    raw = sorted((e["args"]["cycle"], e["args"]["cycle"] + e["args"]["cycles"])
                 for e in trace["traceEvents"]
                 if e.get("ph") == "X" and e.get("pid") == chip and e.get("tid") == tid)
    out = []
    for s, e in raw:
        if out and s <= out[-1][1] + merge_gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def rows_of(trace, chip):
    """The rows to draw, in order: (label, kind, spans)."""
    names = tracks_of(trace, chip)
    rows = []
    mxus = sorted((n for n in names if n.startswith("mxu") and n.endswith(" pushes")),
                  key=lambda n: int(n[3:].split()[0]))
    for n in mxus:
        rows.append((n.replace(" pushes", ""), "mxu", spans(trace, chip, names[n], 0)))
    lanes = sorted((n for n in names if n.startswith("dma lane")),
                   key=lambda n: int(n.split()[-1]))
    for n in lanes:
        rows.append((n, "dma", spans(trace, chip, names[n], 0)))
    if "sem wait" in names:
        rows.append(("sem wait", "stall", spans(trace, chip, names["sem wait"], 0)))
    return rows


def nice_step(span, ticks=8):
    raw = max(span / ticks, 1)
    mag = 10 ** (len(str(int(raw))) - 1)
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def busy(row_spans, start, end):
    return sum(max(0, min(e, end) - max(s, start)) for s, e in row_spans)


def render(trace, chip, start, end, title, width):
    rows = rows_of(trace, chip)
    plot_w = width - LABEL_W - 20
    height = TOP + len(rows) * (ROW_H + ROW_GAP) + AXIS_H + 26
    scale = plot_w / max(end - start, 1)

    def x(c):
        return LABEL_W + (min(max(c, start), end) - start) * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{LABEL_W}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<text x="{LABEL_W}" y="34" fill="#555">chip {chip}, cycles {start} to {end}; '
           f'MXU busy spans (runs of pushes), DMA transfers from issue to completion, '
           f'semaphore-wait stalls</text>']
    for i, (label, kind, sp) in enumerate(rows):
        y = TOP + i * (ROW_H + ROW_GAP)
        frac = busy(sp, start, end) / max(end - start, 1)
        out.append(f'<text x="{LABEL_W - 6}" y="{y + ROW_H - 4}" text-anchor="end">'
                   f'{escape(label)} {100 * frac:.0f}%</text>')
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{plot_w}" height="{ROW_H}" '
                   f'fill="#f2f2f2"/>')
        for s, e in sp:
            if e <= start or s >= end:
                continue
            w = max(x(e) - x(s), 0.5)
            out.append(f'<rect x="{x(s):.2f}" y="{y}" width="{w:.2f}" height="{ROW_H}" '
                       f'fill="{COLORS[kind]}"/>')
    axis_y = TOP + len(rows) * (ROW_H + ROW_GAP) + 4
    out.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + plot_w}" y2="{axis_y}" '
               f'stroke="#333"/>')
    step = nice_step(end - start)
    c = (start + step - 1) // step * step
    while c <= end:
        out.append(f'<line x1="{x(c):.2f}" y1="{axis_y}" x2="{x(c):.2f}" y2="{axis_y + 4}" '
                   f'stroke="#333"/>')
        out.append(f'<text x="{x(c):.2f}" y="{axis_y + 16}" text-anchor="middle">{c}</text>')
        c += step
    out.append(f'<text x="{LABEL_W + plot_w}" y="{axis_y + 30}" text-anchor="end" '
               f'fill="#555">cycles</text>')
    legend_y = height - 10
    lx = LABEL_W
    for kind, text in (("mxu", "MXU busy"), ("dma", "DMA in flight"), ("stall", "sem wait")):
        out.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" '
                   f'fill="{COLORS[kind]}"/>')
        out.append(f'<text x="{lx + 14}" y="{legend_y}">{text}</text>')
        lx += 120
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--chip", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first cycle drawn")
    ap.add_argument("--end", type=int, help="last cycle drawn (default: the run's end)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--width", type=int, default=1000)
    a = ap.parse_args(argv[1:])
    trace = load(a.trace)
    end = a.end if a.end is not None else trace.get("otherData", {}).get("cycles")
    if end is None:
        end = max(e["args"]["cycle"] + e["args"]["cycles"] for e in trace["traceEvents"]
                  if e.get("ph") == "X" and "cycle" in e.get("args", {}))
    if end <= a.start:
        raise SystemExit(f"--end ({end}) must be after --start ({a.start})")
    title = a.title or f"{a.trace} ({trace.get('otherData', {}).get('target', '?')})"
    svg = render(trace, a.chip, a.start, end, title, a.width)
    with open(a.output, "w") as f:
        f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
