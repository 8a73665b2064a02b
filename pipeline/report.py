"""The HTML report of a prediction run: one self-contained file, no network.

Each article shows its sentences highlighted by claim type, with a legend, a
filter per label and the scores on hover. The writer streams: the page head
first, one article at a time, then the tail with the totals, so memory does
not grow with the number of articles.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import IO, Any

from pipeline.config import ALL_LABELS, LABELS

COLOURS = {
    "control": "#bfdbfe",
    "casualty": "#fecaca",
    "heritage": "#fde68a",
}
DESCRIPTIONS = {
    "control": "who holds ground, or the fight over it",
    "casualty": "people killed, hurt, executed, abducted",
    "heritage": "cultural heritage damaged, destroyed or threatened",
    "unrelated": "none of these",
}

CSS = """
:root { --control: #bfdbfe; --casualty: #fecaca; --heritage: #fde68a; }
* { box-sizing: border-box; }
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1f2937; background: #f9fafb; }
header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #e5e7eb;
         padding: 10px 24px; }
header h1 { font-size: 18px; margin: 0 0 4px; }
.meta { color: #6b7280; font-size: 13px; }
.legend, .filters { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: center;
                    margin-top: 6px; font-size: 13px; }
.swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
          vertical-align: -2px; margin-right: 4px; border: 1px solid #9ca3af; }
main { max-width: 980px; margin: 0 auto; padding: 16px 24px 48px; }
section.article { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px;
                  padding: 14px 18px; margin: 14px 0; }
section.article h2 { font-size: 16px; margin: 0 0 2px; }
.counts { margin: 6px 0 8px; font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; margin-right: 6px;
         border: 1px solid #d1d5db; }
.s { border-radius: 3px; padding: 1px 2px; box-decoration-break: clone;
     -webkit-box-decoration-break: clone; }
.s:hover { outline: 2px solid #374151; }
.s.control { background: var(--control); }
.s.casualty { background: var(--casualty); }
.s.heritage { background: var(--heritage); }
.s.control.casualty { background: linear-gradient(var(--control) 50%, var(--casualty) 50%); }
.s.control.heritage { background: linear-gradient(var(--control) 50%, var(--heritage) 50%); }
.s.casualty.heritage { background: linear-gradient(var(--casualty) 50%, var(--heritage) 50%); }
.s.control.casualty.heritage { background: linear-gradient(var(--control) 33%,
    var(--casualty) 33% 66%, var(--heritage) 66%); }
.s[title] { cursor: help; }
.s.trunc { border-bottom: 2px dotted #6b7280; }
body.dim .s.hidden-label { background: none; color: #9ca3af; }
body.only section.article.nomatch { display: none; }
.errors { background: #fff7ed; border: 1px solid #fed7aa; border-radius: 8px; padding: 10px 16px; }
.totals td, .totals th { padding: 2px 10px; text-align: right; }
footer { color: #6b7280; font-size: 12px; text-align: center; padding: 24px; }
"""

SCRIPT = """
(function () {
  var boxes = document.querySelectorAll('input[data-label]');
  var only = document.getElementById('only');
  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.dataset.label] = b.checked; });
    document.body.classList.add('dim');
    document.body.classList.toggle('only', only.checked);
    document.querySelectorAll('.s').forEach(function (s) {
      var labels = (s.dataset.labels || 'unrelated').split(' ');
      var shown = labels.some(function (l) { return on[l]; });
      s.classList.toggle('hidden-label', !shown);
    });
    document.querySelectorAll('section.article').forEach(function (a) {
      var labels = (a.dataset.labels || '').split(' ').filter(Boolean);
      var match = labels.some(function (l) { return on[l]; });
      a.classList.toggle('nomatch', !match);
    });
  }
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  only.addEventListener('change', apply);
  apply();
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def scores_title(scores: dict[str, float], thresholds: dict[str, float]) -> str:
    """The hover text of a sentence: every score next to its threshold."""
    return " \u00b7 ".join(
        f"{label} {scores[label]:.2f} (threshold {thresholds[label]:.2f})" for label in LABELS
    )


class HtmlReport:
    """Streams a report into `out`: `begin`, `article` per article, `end`."""

    def __init__(self, out: IO[str], model: str, version: str, thresholds: dict[str, float]):
        self.out = out
        self.model = model
        self.version = version
        self.thresholds = thresholds
        self.totals = dict.fromkeys(ALL_LABELS, 0)
        self.n_articles = 0
        self.n_sentences = 0

    def begin(self, title: str = "claims report") -> None:
        legend = "".join(
            f'<span><span class="swatch" style="background:{COLOURS[label]}"></span>'
            f"<b>{label}</b>: {_e(DESCRIPTIONS[label])}</span>"
            for label in LABELS
        )
        legend += (
            '<span><span class="swatch" style="background:#fff"></span>'
            "<b>unrelated</b>: none of these</span>"
            '<span><span class="s trunc">dotted</span>: sentence cut at the model limit</span>'
        )
        filters = "".join(
            f'<label><input type="checkbox" data-label="{label}" checked> {label}</label>'
            for label in ALL_LABELS
        )
        self.out.write(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            f"<header><h1>{_e(title)}</h1>"
            f'<div class="meta">model <b>{_e(self.model)}</b> version {_e(self.version)}; '
            "hover a sentence for its scores</div>"
            f'<div class="legend">{legend}</div>'
            f'<div class="filters">Show: {filters}'
            '<label><input type="checkbox" id="only"> only articles with a shown label</label>'
            "</div></header>\n<main>\n"
        )

    def article(self, article: dict[str, Any], predictions: Iterable[dict[str, Any]]) -> None:
        preds = list(predictions)
        counts = dict.fromkeys(ALL_LABELS, 0)
        spans = []
        for p in preds:
            for label in p["labels"]:
                counts[label] += 1
            classes = " ".join(label for label in p["labels"] if label != "unrelated")
            trunc = " trunc" if p.get("truncated") else ""
            spans.append(
                f'<span class="s {classes}{trunc}" data-labels="{" ".join(p["labels"])}" '
                f'title="{_e(scores_title(p["scores"], self.thresholds))}">{_e(p["text"])}</span>'
            )
        for label, n in counts.items():
            self.totals[label] += n
        self.n_articles += 1
        self.n_sentences += len(preds)
        present = " ".join(label for label, n in counts.items() if n)
        meta = " \u00b7 ".join(
            _e(v)
            for v in (
                article.get("article_id", ""),
                article.get("outlet", ""),
                article.get("date", ""),
                f"language {article.get('language') or 'unknown'}",
            )
            if v
        )
        badges = "".join(
            f'<span class="badge" style="background:{COLOURS.get(label, "#fff")}">'
            f"{label} {n}</span>"
            for label, n in counts.items()
        )
        title = article.get("title") or article.get("article_id", "")
        self.out.write(
            f'<section class="article" data-labels="{present}">'
            f'<h2>{_e(title)}</h2><div class="meta">{meta}</div>'
            f'<div class="counts">{badges}</div><p>{" ".join(spans)}</p></section>\n'
        )

    def end(self, errors: list[dict[str, Any]]) -> None:
        rows = "".join(f"<tr><th>{label}</th><td>{n}</td></tr>" for label, n in self.totals.items())
        self.out.write(
            f"<h2>Totals</h2><p>{self.n_articles} articles, {self.n_sentences} sentences.</p>"
            f'<table class="totals">{rows}</table>\n'
        )
        if errors:
            items = "".join(
                f"<li><code>{_e(e['source'])}</code>: {_e(e['reason'])}</li>" for e in errors
            )
            self.out.write(
                f'<div class="errors"><b>{len(errors)} input(s) could not be read</b>'
                f"<ul>{items}</ul></div>\n"
            )
        self.out.write(
            "</main><footer>claims: sentence labels are model predictions, not verified facts."
            f"</footer><script>{SCRIPT}</script></body></html>\n"
        )
