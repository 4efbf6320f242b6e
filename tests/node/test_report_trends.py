"""The report's charts as numbers (``node.federation.report_trends``) on a real SQLite
file: periods by week and by month (empty ones listed, long ranges cut to the latest),
the funnel from current states and applied status updates; and the chart geometry."""

from __future__ import annotations

from datetime import date

from test_reporting import add_connection, add_referral, conn, q  # noqa: F401 (conn is a fixture)

from node.federation import report_trends
from node.web import charts


def test_weeks_start_on_monday_and_empty_weeks_are_listed(conn):  # noqa: F811
    add_connection(conn, "con_a", "Alpha", "peer_a")
    add_referral(conn, 1, at="2026-11-23T00:00:00Z", state="won")          # Monday
    add_referral(conn, 2, at="2026-11-29T23:59:59Z", state="accepted")     # Sunday, same week
    add_referral(conn, 3, at="2026-11-30T08:00:00Z", state="declined")     # next Monday
    add_referral(conn, 4, at="2026-11-30T09:00:00Z", side="receiver", state="received")
    trend = report_trends.over_time(conn, q("2026-11-10", "2026-12-08"), date(2026, 12, 20))
    assert trend.period == "week" and trend.left_out == 0
    assert [(c.start.isoformat(), c.won, c.in_progress, c.awaiting, c.closed, c.total) for c in trend.counts] == [
        ("2026-11-09", 0, 0, 0, 0, 0), ("2026-11-16", 0, 0, 0, 0, 0), ("2026-11-23", 1, 1, 0, 0, 2),
        ("2026-11-30", 0, 0, 1, 1, 2), ("2026-12-07", 0, 0, 0, 0, 0)]
    sender = report_trends.over_time(conn, q("2026-11-10", "2026-12-08", "sender"), date(2026, 12, 20))
    assert sum(c.total for c in sender.counts) == 3


def test_long_ranges_go_by_month_and_keep_the_latest_periods(conn):  # noqa: F811
    add_connection(conn, "con_a", "Alpha", "peer_a")
    add_referral(conn, 1, at="2026-01-15T10:00:00Z")
    add_referral(conn, 2, at="2026-03-01T00:00:00Z", state="lost")
    trend = report_trends.over_time(conn, q(), date(2026, 5, 10))  # from the first referral to today
    assert trend.period == "week"  # under 26 weeks
    trend = report_trends.over_time(conn, q(), date(2026, 9, 10))
    assert trend.period == "month"
    assert [(c.start.isoformat(), c.total) for c in trend.counts] == [
        ("2026-01-01", 1), ("2026-02-01", 0), ("2026-03-01", 1), ("2026-04-01", 0), ("2026-05-01", 0),
        ("2026-06-01", 0), ("2026-07-01", 0), ("2026-08-01", 0), ("2026-09-01", 0)]
    # by week on request, and no more than MAX_PERIODS of them: the latest
    weeks = report_trends.over_time(conn, q("2024-01-01", "2026-03-02"), date(2026, 9, 10), "week")
    assert len(weeks.counts) == report_trends.MAX_PERIODS
    assert weeks.counts[-1].start == date(2026, 2, 23)  # the last day, 1 March, is a Sunday
    assert weeks.left_out == report_trends.periods_between(date(2024, 1, 1), weeks.counts[0].start, "week")
    assert weeks.left_out > 0 and weeks.counts[-1].total == 1  # the week of 23 Feb holds 1 March
    months = report_trends.over_time(conn, q("2020-12-01", "2026-01-02"), date(2026, 9, 10))
    assert (months.counts[0].start, months.counts[-1].start) == (date(2021, 2, 1), date(2026, 1, 1))
    assert months.left_out == 2


def test_funnel_counts_accepted_ever_and_won(conn):  # noqa: F811
    add_connection(conn, "con_a", "Alpha", "peer_a")
    add_referral(conn, 1, state="won", events=[("accepted", True), ("won", True)])
    add_referral(conn, 2, state="withdrawn", events=[("accepted", True), ("withdrawn", True)])
    add_referral(conn, 3, state="delivered", events=[("accepted", False)])  # held, not applied
    add_referral(conn, 4, state="declined", events=[("declined", True)])
    add_referral(conn, 5, state="in-progress")
    add_referral(conn, 6, side="receiver", state="received")
    funnels = report_trends.funnels(conn, q())
    assert [(f.side, f.sent, f.accepted, f.won) for f in funnels] == [("sender", 5, 3, 1), ("receiver", 1, 0, 0)]
    assert [f.side for f in report_trends.funnels(conn, q(side="receiver"))] == ["receiver"]


def test_chart_geometry() -> None:
    assert [charts.nice_step(n) for n in (1, 5, 6, 11, 40, 99, 1200)] == [1, 1, 2, 5, 10, 20, 500]
    series = [charts.Series("won", "Won"), charts.Series("closed", "Closed")]
    chart = charts.stacked_bars("c", "T", "D", ["a", "b"], [{"won": 2, "closed": 1}, {}], series)
    first, empty = chart.bars
    assert [s.key for s in first.segments] == ["won", "closed"] and not empty.segments
    won, closed = first.segments
    assert won.y + won.height == chart.bottom and abs(won.height - 2 * closed.height) < 0.01
    assert chart.ticks[0].y == chart.bottom and chart.ticks[-1].value == 3
    assert first.tooltip == "a: 3 (2 won, 1 closed)"
    f = charts.funnel("f", "T", "D", [("Sent", 4), ("Accepted", 2), ("Won", 0)])
    assert [s.share for s in f.steps] == ["", "50%", "0%"] and f.steps[2].width == 0
    assert abs(f.steps[1].width * 2 - f.steps[0].width) < 0.01


def test_a_bar_with_data_is_always_labelled_and_the_phone_drawing_has_fewer_labels() -> None:
    series = [charts.Series("won", "Won")]
    labels = [f"w{i}" for i in range(14)]
    ticks = [(f"w{i}", "2026" if i == 0 else "") for i in range(14)]
    values = [{"won": 1} if i == 11 else {} for i in range(14)]
    chart = charts.stacked_bars("c", "T", "D", labels, values, series, ticks=ticks)
    assert chart.narrow is not None and chart.narrow.width == charts.NARROW_WIDTH < chart.width
    for drawn, most in ((chart, 12), (chart.narrow, 6)):
        shown = [i for i, b in enumerate(drawn.bars) if b.tick_label]
        assert 11 in shown, (drawn.id, shown)  # the only bar with data: every-other labelling skipped it
        # labels never touch: centres at least a label's width apart ("w13": 3 characters)
        centres = [drawn.bars[i].x + drawn.bars[i].width / 2 for i in shown]
        assert all(b - a >= charts.CHAR_WIDTH * 3 + charts.LABEL_GAP for a, b in zip(centres, centres[1:], strict=False))
        assert len(shown) <= most + 1
        # the year goes under the first label, whichever bar that is
        assert [b.tick_sub for b in drawn.bars if b.tick_label][0] == "2026"
        assert sum(1 for b in drawn.bars if b.tick_sub) == 1
    assert chart.narrow.narrow is None and chart.narrow.id == "c-narrow"
