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
    #: The label is also shown on a narrow screen (where fewer fit).
    narrow: bool
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


def nice_step(top: int, most: int = 5) -> int:
    """A step of 1, 2 or 5 times a power of ten that gives at most ``most`` steps to ``top``."""
    if top <= most:
        return 1
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def stacked_bars(id: str, title: str, description: str, labels: Sequence[str],
                 values: Sequence[dict[str, int]], series: Sequence[Series], *,
                 ticks: Sequence[tuple[str, str]] | None = None, height: int = 280) -> BarChart:
    """One bar per label, its segments stacked in ``series`` order from the bottom.
    ``ticks``: per bar, the label under it and a second line ("" for none); by default
    the label itself."""
    left, right, top, bottom = 44.0, WIDTH - 12.0, 14.0, height - 44.0
    highest = max((sum(v.get(s.key, 0) for s in series) for v in values), default=0)
    step = nice_step(max(highest, 1))
    ceiling = step * math.ceil(max(highest, 1) / step)
    scale = (bottom - top) / ceiling
    slot = (right - left) / max(len(labels), 1)
    width = min(slot * 0.7, 56.0)
    every, every_narrow = (math.ceil(len(labels) / n) if labels else 1 for n in (12, 6))
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = bottom
        segments = []
        for s in series:
            n = value.get(s.key, 0)
            if n:
                h = n * scale
                y -= h
                segments.append(Segment(s.key, n, round(y, 2), round(h, 2)))
        total = sum(value.get(s.key, 0) for s in series)
        parts = ", ".join(f"{value.get(s.key, 0)} {s.label.lower()}" for s in series if value.get(s.key, 0))
        tick, sub = ticks[i] if ticks else (label, "")
        shown = i % every == 0
        bars.append(Bar(label, tick if shown else "", sub if shown else "", i % every_narrow == 0, total,
                        round(left + slot * i + (slot - width) / 2, 2), round(width, 2), segments,
                        f"{label}: {total}" + (f" ({parts})" if parts else "")))
    marks = [Tick(v, round(bottom - v * scale, 2)) for v in range(0, ceiling + 1, step)]
    return BarChart(id, title, description, WIDTH, height, left, right, top, bottom, bars, marks, list(series))


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
