"""`claims label`: label sentences in the terminal with the model's suggestion beside each.

One sentence at a time, with its article's title and its neighbours, the
model's suggested labels and scores, and the session's progress. Keys:

    1 2 3   toggle control / casualty / heritage (clears unrelated)
    0       unrelated (clears the others; pressed again, clears itself)
    Enter   save the toggled labels; with nothing toggled, the model's suggestion
    s       skip (to the end of the queue, this session and the next)
    b       back to the previous decision, to change it
    ?       the guide's definitions
    q       quit (every decision is already on disk)

Every decision is written before the next sentence shows (`LabelStore.save`).
In audit mode, and when going back, the toggles start at the sentence's
current labels, so Enter keeps them. The terminal title carries the progress
("claims label: 3/50 done, 1 skipped"), which is also what the tests follow.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import ALL_LABELS, LABELS, UNRELATED, Params
from pipeline.label_queue import Queue, QueueItem, QueueOptions, build_queue, record_skip
from pipeline.label_store import LabelStore, default_annotator, source_for, utc_now
from pipeline.schema import LabeledSentence, RecordError

log = logging.getLogger(__name__)

KEYS = {"1": "control", "2": "casualty", "3": "heritage", "0": UNRELATED}
FALLBACK_GUIDE = [
    ("control", "who holds ground, or the fight over it"),
    ("casualty", "people killed, hurt, executed, abducted (or that nobody was)"),
    ("heritage", "cultural heritage damaged, destroyed, looted, threatened or spared"),
    ("unrelated", "none of these; never combined with another label"),
]


def canonical(labels: set[str] | list[str]) -> list[str]:
    """Labels in the guide's order."""
    return [k for k in ALL_LABELS if k in labels]


@dataclass
class Decision:
    item: QueueItem
    labels: list[str]


class Session:
    """The labeling session's state; every method is one key press."""

    def __init__(
        self,
        queue: Queue,
        store: LabelStore,
        *,
        annotator: str,
        seed_prefix: str,
        on_skip: Callable[[str], None] = lambda _sid: None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.queue = queue
        self.store = store
        self.annotator = annotator
        self.seed_prefix = seed_prefix
        self.on_skip = on_skip
        self.clock = clock
        self.pending: deque[QueueItem] = deque(queue.items)
        self.history: list[Decision] = []
        self.pos = 0
        self.toggled: set[str] = set()
        self.skipped = 0
        self.message = ""
        self._reset_toggles()

    # --- what is shown ---
    @property
    def reviewing(self) -> bool:
        return self.pos < len(self.history)

    @property
    def current(self) -> QueueItem | None:
        if self.reviewing:
            return self.history[self.pos].item
        return self.pending[0] if self.pending else None

    @property
    def done(self) -> int:
        return len(self.history)

    def counts(self) -> dict[str, int]:
        counter = Counter(k for d in self.history for k in d.labels)
        return {k: counter.get(k, 0) for k in ALL_LABELS}

    def chosen(self) -> list[str]:
        """What Enter saves: the toggles, or the suggestion when nothing is toggled."""
        item = self.current
        if self.toggled or item is None:
            return canonical(self.toggled)
        return list(item.suggestion)

    def title(self) -> str:
        text = f"claims label: {self.done}/{len(self.queue.items)} done, {self.skipped} skipped"
        return text + (f", reviewing {self.pos + 1}" if self.reviewing else "")

    # --- keys ---
    def toggle(self, label: str) -> None:
        if label == UNRELATED:
            self.toggled = set() if UNRELATED in self.toggled else {UNRELATED}
        else:
            self.toggled.discard(UNRELATED)
            self.toggled ^= {label}

    def accept(self) -> None:
        item = self.current
        if item is None:
            self.message = "The queue is done: b to go back, q to quit."
            return
        labels = self.chosen()
        before = self.history[self.pos].labels if self.reviewing else _current_labels(item)
        if labels != before:
            self._save(item, labels)
            self.message = f"saved {item.sentence.sentence_id}: {', '.join(labels)}"
        else:
            self.message = f"kept {item.sentence.sentence_id}: {', '.join(labels)}"
        if self.reviewing:
            self.history[self.pos] = Decision(item, labels)
        else:
            self.history.append(Decision(item, labels))
            self.pending.popleft()
        self.pos += 1
        self._reset_toggles()

    def _save(self, item: QueueItem, labels: list[str]) -> None:
        s = item.sentence
        source = item.labeled.source if item.labeled else source_for(s.article_id, self.seed_prefix)
        record = LabeledSentence(
            sentence_id=s.sentence_id,
            article_id=s.article_id,
            text=s.text,
            labels=labels,
            source=source,
            annotator=self.annotator,
            labeled_at=self.clock(),
            note="",
        )
        self.store.save(record)

    def skip(self) -> None:
        if self.reviewing:
            self.pos += 1  # leave that decision as it is
        elif self.pending:
            item = self.pending.popleft()
            self.pending.append(item)
            self.on_skip(item.sentence.sentence_id)
            self.skipped += 1
            self.message = f"skipped {item.sentence.sentence_id}"
        self._reset_toggles()

    def back(self) -> None:
        if self.pos == 0:
            self.message = "Nothing to go back to in this session."
            return
        self.pos -= 1
        self._reset_toggles()
        self.message = "Change the labels and press Enter, or s to leave them."

    def _reset_toggles(self) -> None:
        item = self.current
        if self.reviewing:
            self.toggled = set(self.history[self.pos].labels)
        else:
            self.toggled = set(_current_labels(item)) if item is not None else set()


def _current_labels(item: QueueItem | None) -> list[str]:
    """The human label the sentence has now (audit), else none."""
    return canonical(item.labeled.labels) if item and item.labeled else []


# --- the guide -------------------------------------------------------------------------


def guide_definitions(path: Path) -> list[tuple[str, str]]:
    """(label, its definition paragraph) from the guidelines' `## <label>` sections."""
    if not path.exists():
        return FALLBACK_GUIDE
    text = path.read_text(encoding="utf-8")
    out = []
    for label in ALL_LABELS:
        match = re.search(rf"^## {label}\s*\n(.*?)(?:\n\s*\n|\Z)", text, re.M | re.S)
        if match:
            out.append((label, " ".join(match.group(1).split())))
    return out or FALLBACK_GUIDE


# --- the screen ------------------------------------------------------------------------

Fragments = list[tuple[str, str]]


class Screen:
    """Formatted text for each part of the window, from the session's state."""

    def __init__(self, session: Session, guide: list[tuple[str, str]], header: str) -> None:
        self.session = session
        self.guide = guide
        self.header_text = header
        self.show_guide = False

    def header(self) -> Fragments:
        s = self.session
        counts = " · ".join(f"{k} {n}" for k, n in s.counts().items())
        return [
            ("class:header", f" {self.header_text} "),
            ("class:progress", f" done {s.done}/{len(s.queue.items)} · skipped {s.skipped} "),
            ("class:counts", f" {counts} "),
        ]

    def body(self) -> Fragments:
        if self.show_guide:
            return self.guide_text()
        item = self.session.current
        if item is None:
            return [("class:done", "\n  The queue is done. b goes back, q quits.\n")]
        s = item.sentence
        out: Fragments = [
            ("class:title", f"  {item.title or '(no title)'}"),
            ("class:dim", f"   [{s.article_id}]\n\n"),
        ]
        out += [("class:context", f"    {t}\n") for t in item.before]
        out += [("class:marker", "  ▶ "), ("class:sentence", f"{s.text}\n")]
        out += [("class:context", f"    {t}\n") for t in item.after]
        return out

    def model(self) -> Fragments:
        item = self.session.current
        if item is None or self.show_guide:
            return []
        q = self.session.queue
        scores = "   ".join(
            f"{k} {item.scores[k]:.2f}{'≥' if item.scores[k] >= q.thresholds[k] else '<'}"
            f"{q.thresholds[k]:.2f}"
            for k in LABELS
        )
        out: Fragments = [
            ("", "  suggested: "),
            ("class:suggestion", ", ".join(item.suggestion)),
            ("class:dim", f"    ({scores})\n"),
        ]
        if item.why:
            out.append(("class:dim", f"  picked: {item.why}\n"))
        if item.labeled:
            lab = item.labeled
            out.append(("class:dim", f"  labeled: {', '.join(lab.labels)} by {lab.annotator}\n"))
        if self.session.reviewing:
            out.append(("class:warn", "  reviewing an earlier decision of this session\n"))
        return out

    def choices(self) -> Fragments:
        s = self.session
        out: Fragments = [("", "  ")]
        for key, label in KEYS.items():
            on = label in s.toggled
            style = "class:on" if on else "class:off"
            out.append((style, f"[{key}] {label} {'■' if on else '□'}"))
            out.append(("", "   "))
        if s.current is not None:
            out.append(("class:dim", f"Enter saves: {', '.join(s.chosen())}"))
        return out

    def status(self) -> Fragments:
        return [("class:status", f"  {self.session.message}")]

    def keys(self) -> Fragments:
        return [
            (
                "class:footer",
                " 1 2 3 toggle · 0 unrelated · Enter accept (nothing toggled: the suggestion)"
                " · s skip · b back · ? guide · q quit ",
            )
        ]

    def guide_text(self) -> Fragments:
        out: Fragments = [
            ("class:title", "  The labels, from the guidelines (? closes)\n\n"),
            ("", "  One or more of the three claim labels, or else unrelated alone.\n\n"),
        ]
        for label, text in self.guide:
            out += [("class:suggestion", f"  {label}: "), ("", f"{text}\n\n")]
        return out


STYLE = {
    "header": "reverse bold",
    "progress": "reverse",
    "counts": "reverse",
    "title": "bold underline",
    "sentence": "bold",
    "marker": "bold ansigreen",
    "context": "ansibrightblack",
    "dim": "ansibrightblack",
    "suggestion": "bold ansicyan",
    "on": "bold ansigreen",
    "off": "",
    "warn": "ansiyellow",
    "status": "ansiyellow",
    "done": "bold",
    "footer": "reverse",
}


def build_app(screen: Screen, **io: Any) -> Any:
    """The full-screen prompt_toolkit Application (io: optional `input`/`output` for tests)."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl
    from prompt_toolkit.styles import Style

    session = screen.session
    kb = KeyBindings()

    def on(*keys: str) -> Callable[[Callable[[], None]], None]:
        def register(action: Callable[[], None]) -> None:
            @kb.add(*keys)
            def _(event: Any) -> None:
                try:
                    action()
                except (OSError, RecordError) as exc:
                    session.message = f"NOT SAVED: {exc}"
                event.app.output.set_title(session.title())

        return register

    for key, label in KEYS.items():
        on(key)(lambda label=label: session.toggle(label))
    on("enter")(session.accept)
    on("s")(session.skip)
    on("b")(session.back)

    @on("?")
    def _toggle_guide() -> None:
        screen.show_guide = not screen.show_guide

    @kb.add("q")
    @kb.add("c-c")
    def _quit(event: Any) -> None:
        event.app.output.clear_title()
        event.app.exit()

    def window(part: Callable[[], Fragments], **kw: Any) -> Window:
        return Window(FormattedTextControl(part), **kw)

    rule = Window(height=1, char="─", style="class:dim")
    layout = HSplit(
        [
            window(screen.header, height=1, style="class:header"),
            rule,
            window(screen.body, wrap_lines=True),
            rule,
            window(screen.model, wrap_lines=True, dont_extend_height=True),
            window(screen.choices, height=1),
            window(screen.status, height=1),
            window(screen.keys, height=1),
        ]
    )
    return Application(
        layout=Layout(layout),
        key_bindings=kb,
        style=Style.from_dict(STYLE),
        full_screen=True,
        **io,
    )


# --- the command -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSummary:
    labeled: int
    skipped: int
    counts: dict[str, int]
    queued: int
    candidates: int


def run_label(
    params: Params,
    opts: QueueOptions,
    *,
    annotator: str | None = None,
    from_inputs: list[str] | None = None,
    batch: str | None = None,
    echo: Callable[[str], None] = print,
) -> SessionSummary:
    """Add `--from` articles if any, build the queue, run the labeler, report."""
    from dataclasses import replace

    from pipeline.label_queue import add_articles, batch_name

    if from_inputs:
        articles, sentences, errors = add_articles(params, from_inputs, batch or batch_name())
        for error in errors:
            echo(f"warning: not read: {error}")
        echo(f"added {len(articles)} articles, {len(sentences)} sentences")
        opts = replace(opts, articles=frozenset(a.article_id for a in articles))
    queue = build_queue(params, opts)
    if not queue.items:
        echo(f"nothing to label: no {opts.strategy} candidates left")
        return SessionSummary(0, 0, dict.fromkeys(ALL_LABELS, 0), 0, queue.candidates)
    annotator = annotator or default_annotator()
    session = Session(
        queue,
        LabelStore(params.path("labels")),
        annotator=annotator,
        seed_prefix=params.dataset.seed_prefix,
        on_skip=lambda sid: record_skip(params, sid, annotator),
    )
    header = f"claims label · {queue.strategy} · {queue.model} {queue.model_version} · {annotator}"
    screen = Screen(session, guide_definitions(params.path("guidelines")), header)
    app = build_app(screen)
    app.run(pre_run=lambda: app.output.set_title(session.title()))
    summary = SessionSummary(
        labeled=session.done,
        skipped=session.skipped,
        counts=session.counts(),
        queued=len(queue.items),
        candidates=queue.candidates,
    )
    counts = ", ".join(f"{k} {n}" for k, n in summary.counts.items())
    echo(
        f"labeled {summary.labeled} of {summary.queued} queued ({counts}); "
        f"skipped {summary.skipped}; saved in {params.path('labels')}"
    )
    return summary
