"""Charts drawn on the server as SVG: a stacked bar chart and a funnel.

This module does the geometry only (numbers in, boxes and labels out, no markup); the
template ``_charts.html`` writes the SVG from them, so every text in a chart goes
through Jinja's autoescaping. Colours come from classes in ``static/reports.css``
(the Content-Security-Policy allows no inline style). Each chart has an accessible
name and description, and the page shows its numbers as a table too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
#: The bar chart's second drawing, for a phone: about as wide as the screen, so that its
#: text is drawn at the size it is meant to be read (CSS shows one drawing or the other).
NARROW_WIDTH = 360


@dataclass(frozen=True)
class Series:
    key: str
    label: str


@dataclass(frozen=True)
class Segment:
    key: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    label: str
    #: The label under the bar ("" where labels would crowd), and a second line (a year).
    tick_label: str
    tick_sub: str
    total: int
    x: float
    width: float
    segments: list[Segment]
    #: What a pointer over the bar shows.
    tooltip: str


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class BarChart:
    id: str
    title: str
    description: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bars: list[Bar]
    ticks: list[Tick]
    series: list[Series]
    #: The same chart drawn for a narrow screen (None: this is that drawing).
    narrow: BarChart | None = None


def nice_step(top: int, most: int = 5) -> int:
    """A step of 1, 2 or 5 times a power of ten that gives at most ``most`` steps to ``top``."""
    if top <= most:
        return 1
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


#: About how wide a character of a label under a bar is (13px text), and the room
#: between two labels, in the chart's own units.
CHAR_WIDTH, LABEL_GAP = 7.2, 10.0


def spacing(count: int, slot: float, longest: int, most: int) -> int:
    """Label every n-th bar: at most about ``most`` labels, and never two so close that
    labels of ``longest`` characters, ``slot`` apart per bar, would touch."""
    if not count:
        return 1
    return max(1, math.ceil(count / most), math.ceil((CHAR_WIDTH * longest + LABEL_GAP) / slot))


def labelled(totals: Sequence[int], every: int) -> list[bool]:
    """Which bars get a label under them, never two closer than ``every`` bars. Bars with
    referrals first (so that the only bar with data is never the one left without a
    label), then every n-th bar fills the gaps."""
    n = len(totals)
    wanted = [i for i in range(n) if totals[i]] + list(range(0, n, every))
    chosen: list[int] = []
    for i in wanted:
        if all(abs(i - j) >= every for j in chosen):
            chosen.append(i)
    return [i in chosen for i in range(n)]


def stacked_bars(id: str, title: str, description: str, labels: Sequence[str],
                 values: Sequence[dict[str, int]], series: Sequence[Series], *,
                 ticks: Sequence[tuple[str, str]] | None = None, height: int = 280,
                 width: int = WIDTH, most_labels: int = 12, narrow: bool = True) -> BarChart:
    """One bar per label, its segments stacked in ``series`` order from the bottom.
    ``ticks``: per bar, the label under it and a second line (a year: "" where it does
    not change); by default the label itself. With ``narrow``, the chart carries its
    drawing for a phone too (``NARROW_WIDTH`` wide, at most 6 labels)."""
    left, right, top, bottom = (44.0 if width >= WIDTH else 36.0), width - 12.0, 18.0, height - 44.0
    highest = max((sum(v.get(s.key, 0) for s in series) for v in values), default=0)
    step = nice_step(max(highest, 1))
    ceiling = step * math.ceil(max(highest, 1) / step)
    scale = (bottom - top) / ceiling
    slot = (right - left) / max(len(labels), 1)
    bar_width = min(slot * 0.7, 56.0)
    totals = [sum(v.get(s.key, 0) for s in series) for v in values]
    longest = max((len(t[0]) for t in ticks), default=0) if ticks else max(map(len, labels), default=0)
    shown = labelled(totals, spacing(len(labels), slot, longest, most_labels))
    bars, year = [], ""
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = bottom
        segments = []
        for s in series:
            n = value.get(s.key, 0)
            if n:
                h = n * scale
                y -= h
                segments.append(Segment(s.key, n, round(y, 2), round(h, 2)))
        parts = ", ".join(f"{value.get(s.key, 0)} {s.label.lower()}" for s in series if value.get(s.key, 0))
        tick, sub = ticks[i] if ticks else (label, "")
        year = sub or year  # a year not shown under its own bar goes under the next label
        bars.append(Bar(label, tick if shown[i] else "", year if shown[i] else "", totals[i],
                        round(left + slot * i + (slot - bar_width) / 2, 2), round(bar_width, 2), segments,
                        f"{label}: {totals[i]}" + (f" ({parts})" if parts else "")))
        if shown[i]:
            year = ""
    marks = [Tick(v, round(bottom - v * scale, 2)) for v in range(0, ceiling + 1, step)]
    phone = stacked_bars(f"{id}-narrow", title, description, labels, values, series, ticks=ticks,
                         height=height, width=NARROW_WIDTH, most_labels=6, narrow=False) if narrow else None
    return BarChart(id, title, description, width, height, left, right, top, bottom, bars, marks,
                    list(series), phone)


@dataclass(frozen=True)
class Step:
    label: str
    value: int
    #: Of the first step, as a whole percentage ("" for the first step).
    share: str
    x: float
    y: float
    width: float


@dataclass(frozen=True)
class FunnelChart:
    id: str
    title: str
    description: str
    width: int
    height: int
    row: float
    label_x: float
    value_x: float
    steps: list[Step]


def funnel(id: str, title: str, description: str, steps: Sequence[tuple[str, int]]) -> FunnelChart:
    """Bars centred on one axis, each as wide as its share of the first step. Narrower
    than the bar chart: two funnels sit side by side."""
    width, row, gap, label_x = 480, 40.0, 10.0, 112.0
    span_left, span_right = label_x + 10, width - 92.0
    centre, full = (span_left + span_right) / 2, span_right - span_left
    first = steps[0][1] if steps else 0
    drawn = []
    for i, (label, value) in enumerate(steps):
        share = value / first if first else 0.0
        bar = max(full * share, 2.0 if value else 0.0)
        drawn.append(Step(label, value, "" if i == 0 else f"{round(share * 100)}%", round(centre - bar / 2, 2),
                          round(i * (row + gap) + 6, 2), round(bar, 2)))
    height = int(len(steps) * (row + gap) + 6)
    return FunnelChart(id, title, description, width, height, row, label_x, span_right + 10, drawn)
