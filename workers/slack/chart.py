"""The chart of a deployment: canary against stable over its course, as a PNG for its thread.

Two parts: `chart_data` (pure) turns the deployment, its check samples (workers.domain.samples)
and its event log into what is drawn — one line per step of each version's 5xx rate, the step
changes, the gates' waits, the failure, rollback or promotion, and the `max_error_rate`
threshold; `render_png` draws that with matplotlib's Agg canvas. The tests check the data; the
picture only has to be a valid PNG.

The rates are each step's so far (the counts the judge read at that check), so a line starts
afresh at every step and ends at the figure its verdict quoted. Latency gets a second panel when
the samples carry it.

matplotlib is imported inside `render_png` only: the web process imports this package (through
the notifier) and must stay light (tests/test_layout.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workers.analysis.judge import format_pct
from workers.domain.deployment import Deployment
from workers.domain.events import (
    Approved,
    Event,
    Failed,
    GateOpened,
    Promoted,
    RollbackStarted,
    RolledBack,
    Shifted,
    StepFailed,
)
from workers.domain.images import short_name
from workers.domain.samples import CheckSample

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Size of the picture in inches and its resolution: 1,000 × 560 pixels with one panel (Slack
#: shows a 360-pixel-high preview and the full picture on a click).
WIDTH, HEIGHT, LATENCY_HEIGHT, DPI = 10.0, 5.6, 3.2, 100
#: Colours: the canary in orange, the stable in blue, marks in grey, red and green.
CANARY, STABLE, GATE, FAIL, PROMOTED, THRESHOLD = (
    "#e8710a",
    "#1a73e8",
    "#9aa0a6",
    "#d93025",
    "#188038",
    "#d93025",
)


@dataclass(frozen=True)
class Point:
    """One check, in minutes since the deployment was requested."""

    minute: float
    step: int
    canary_pct: float | None
    stable_pct: float | None
    canary_ms: float | None = None
    stable_ms: float | None = None


@dataclass(frozen=True)
class StepMark:
    """The weight of a step was applied."""

    minute: float
    step: int
    weight: int


@dataclass(frozen=True)
class Span:
    """A gate's wait: from its opening to its decision (or to the chart's end)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Mark:
    """A moment that changed the deployment's course: a failed check, a rollback, a promotion."""

    minute: float
    kind: str  # "fail", "rollback", "promoted", "failed"
    label: str


@dataclass(frozen=True)
class ChartData:
    """Everything the picture shows (pure: tests read this, not pixels)."""

    title: str
    subtitle: str
    threshold_pct: float
    #: Points grouped by step, in order: each group is one line segment per version.
    steps: list[list[Point]]
    step_marks: list[StepMark]
    gates: list[Span]
    marks: list[Mark]
    end_minute: float
    has_latency: bool = False
    #: An absolute latency ceiling to draw, when the catalogue sets one (None: none drawn).
    latency_threshold_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> list[Point]:
        return [p for group in self.steps for p in group]


def chart_data(
    dep: Deployment, samples: Sequence[CheckSample], events: Sequence[Event], *, now: float
) -> ChartData:
    """What the chart of `dep` shows at `now`, from its check samples and its event log."""
    start = dep.created_at

    def minute(at: float) -> float:
        return max(0.0, (at - start) / 60.0)

    groups: list[list[Point]] = []
    last_step: int | None = None
    for s in sorted(samples, key=lambda s: s.at):
        point = Point(
            minute(s.at),
            s.step,
            s.canary_rate_pct,
            s.stable_rate_pct,
            s.canary_latency_ms,
            s.stable_latency_ms,
        )
        if s.step != last_step or not groups:
            groups.append([])
            last_step = s.step
        groups[-1].append(point)

    step_marks: list[StepMark] = []
    gates: list[Span] = []
    marks: list[Mark] = []
    open_gate: GateOpened | None = None
    last_at = max([start, *(s.at for s in samples), *(e.at for e in events)])
    end_at = max(last_at, dep.finished_at or 0.0) if not dep.active else max(last_at, now)
    for e in events:
        if isinstance(e, Shifted):
            step_marks.append(StepMark(minute(e.at), e.step or 0, e.weight))
        elif isinstance(e, GateOpened):
            open_gate = e
        elif isinstance(e, StepFailed):
            marks.append(Mark(minute(e.at), "fail", f"step {e.step or '?'} failed"))
        elif isinstance(e, RollbackStarted):
            if open_gate is not None:
                gates.append(_gate_span(open_gate, e.at, minute))
                open_gate = None
            if marks and marks[-1].kind == "fail" and marks[-1].minute == minute(e.at):
                # the failed check rolled it back: one mark says both
                marks[-1] = Mark(marks[-1].minute, "fail", f"{marks[-1].label}: rolled back")
            else:
                marks.append(Mark(minute(e.at), "rollback", f"rollback ({e.by.value})"))
        elif isinstance(e, Promoted):
            marks.append(Mark(minute(e.at), "promoted", "promoted"))
        elif isinstance(e, Failed):
            marks.append(Mark(minute(e.at), "failed", "failed"))
        if isinstance(e, Approved | Promoted | RolledBack | Failed) and open_gate is not None:
            gates.append(_gate_span(open_gate, e.at, minute))
            open_gate = None
    if open_gate is not None:  # still waiting: shaded up to now
        gates.append(_gate_span(open_gate, end_at, minute))

    has_latency = any(p.canary_ms is not None or p.stable_ms is not None for g in groups for p in g)
    notes = [] if groups else ["no check has been made yet"]
    return ChartData(
        title=f"{dep.service} · {short_name(dep.image)} · {dep.id}",
        subtitle=_subtitle(dep),
        threshold_pct=dep.settings.max_error_rate,
        steps=groups,
        step_marks=step_marks,
        gates=gates,
        marks=marks,
        end_minute=minute(end_at),
        has_latency=has_latency,
        notes=notes,
    )


def _gate_span(gate: GateOpened, until: float, minute: Callable[[float], float]) -> Span:
    label = f"gate before {gate.next_weight} %" if gate.next_weight else "gate"
    return Span(minute(gate.at), minute(until), label)


def _subtitle(dep: Deployment) -> str:
    state = dep.state.value.replace("_", " ")
    steps = " → ".join(f"{w} %" for w in dep.settings.steps)
    return (
        f"5xx rate of each step so far (what each check judged) · steps {steps} · "
        f"threshold {format_pct(dep.settings.max_error_rate)} · {state}"
    )


def render_png(data: ChartData) -> bytes:
    """Draw `data` as a PNG (matplotlib's Agg canvas, no display, no pyplot state)."""
    # Imported here, not at the top: the web process imports this module and stays light.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if data.has_latency else 1
    height = HEIGHT + (LATENCY_HEIGHT if data.has_latency else 0.0)
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ratios = [HEIGHT, LATENCY_HEIGHT] if data.has_latency else [1]
    # Margins fixed in inches (a constrained layout costs about a third of the render).
    fig.subplots_adjust(
        left=0.7 / WIDTH,
        right=1 - 0.25 / WIDTH,
        top=1 - 0.75 / height,
        bottom=0.55 / height,
        hspace=0.12,
    )
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    fig.suptitle(f"{data.title}\n{data.subtitle}", fontsize=10, x=0.01, ha="left")

    scale, unit = time_unit(data.end_minute)
    errors = axes[0]
    _series(errors, data, "canary_pct", "stable_pct", scale)
    errors.axhline(data.threshold_pct, color=THRESHOLD, linestyle="--", linewidth=1.2)
    errors.annotate(
        f"max_error_rate {format_pct(data.threshold_pct)}",
        xy=(0.005, data.threshold_pct),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        color=THRESHOLD,
        fontsize=8,
    )
    rates = [v for p in data.points for v in (p.canary_pct, p.stable_pct) if v is not None]
    errors.set_ylim(0, max([data.threshold_pct * 1.6, *rates]) * 1.1 or 1.0)
    errors.set_ylabel("5xx rate (%)")
    if data.has_latency:
        latency = axes[1]
        _series(latency, data, "canary_ms", "stable_ms", scale)
        latency.set_ylabel("latency (ms)")
        if data.latency_threshold_ms is not None:
            latency.axhline(
                data.latency_threshold_ms, color=THRESHOLD, linestyle="--", linewidth=1.2
            )
        latency.set_ylim(bottom=0)
    for ax in axes:
        _marks(ax, data, scale, label=ax is axes[0])
        ax.grid(True, axis="y", color="#e8eaed", linewidth=0.8)
        ax.set_xlim(0, max(data.end_minute * scale, 1e-6) * 1.03)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xlabel(f"{unit} since /canary deploy")
    if data.notes:
        errors.text(0.5, 0.5, "; ".join(data.notes), transform=errors.transAxes, ha="center")
    handles, labels = errors.get_legend_handles_labels()
    if handles:  # in the title's band, on the right: never over the data or the marks
        fig.legend(handles[:2], labels[:2], loc="upper right", fontsize=9, frameon=False, ncols=2)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def time_unit(end_minute: float) -> tuple[float, str]:
    """The time axis' unit for a deployment of `end_minute` minutes: (factor from minutes,
    name); seconds for the sandbox's compressed time, hours past three."""
    if end_minute < 2:
        return 60.0, "seconds"
    if end_minute > 180:
        return 1 / 60, "hours"
    return 1.0, "minutes"


def _series(ax: Axes, data: ChartData, canary: str, stable: str, scale: float) -> None:
    """One line per step for each version (a step's counts start afresh)."""
    for i, group in enumerate(data.steps):
        xs = [p.minute * scale for p in group]
        for name, colour, label in ((stable, STABLE, "stable"), (canary, CANARY, "canary")):
            ys = [getattr(p, name) for p in group]
            ys = [float("nan") if y is None else y for y in ys]
            ax.plot(
                xs,
                ys,
                color=colour,
                linewidth=1.8 if label == "canary" else 1.4,
                marker="o",
                markersize=2.5,
                label=label if i == 0 else None,
            )


def _marks(ax: Axes, data: ChartData, scale: float, *, label: bool) -> None:
    """Step changes (dotted, with the weight), gates (shaded), failure/rollback/promotion."""
    transform = ax.get_xaxis_transform()
    span = max(data.end_minute, 1e-6)
    for step in data.step_marks:
        at = step.minute * scale
        ax.axvline(at, color=GATE, linestyle=":", linewidth=1)
        if label:
            ax.text(at, 1.0, f" {step.weight} %", transform=transform, fontsize=8, va="bottom")
    for g in data.gates:
        ax.axvspan(g.start * scale, g.end * scale, color=GATE, alpha=0.18, linewidth=0)
        if label and (g.end - g.start) / span > 0.12:  # named where there is room for it
            ax.text(
                (g.start + g.end) / 2 * scale,
                0.97,
                g.label,
                transform=transform,
                fontsize=7,
                ha="center",
                va="top",
                color="#5f6368",
            )
    colours = {"fail": FAIL, "rollback": FAIL, "failed": FAIL, "promoted": PROMOTED}
    for m in data.marks:
        style = "-" if m.kind != "fail" else "--"
        ax.axvline(m.minute * scale, color=colours[m.kind], linestyle=style, linewidth=1.3)
        if label:  # written on the side of the line with room for it
            left = m.minute > 0.6 * span
            ax.text(
                m.minute * scale,
                0.90 if m.kind == "fail" else 0.82,
                f"{m.label} " if left else f" {m.label}",
                transform=transform,
                fontsize=8,
                color=colours[m.kind],
                ha="right" if left else "left",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
