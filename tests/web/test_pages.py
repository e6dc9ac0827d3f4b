"""Page bodies are pure (records in, HTML out): whatever text the model wrote, a rendered page holds no
element, attribute or script of its making, and the text reads back exactly (Hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.runs.queries import Clamp, DecisionRow, Page
from agent.textsafe import for_plain_terminal
from agent.web import pages

TAGS = {"table", "thead", "tbody", "tr", "th", "td", "a", "p"}


@dataclass
class _Seen(HTMLParser):
    tags: set[str] = field(default_factory=set)
    cells: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.cells.append("")

    def handle_data(self, data: str) -> None:
        if self.cells:
            self.cells[-1] += data


def _row(text: str) -> DecisionRow:
    return DecisionRow(
        1, "run", "BTC/USDT", 0, "llm", "hold", 0.0, 0.0, 0.5, False, None, text,
        (Clamp(text, text),), (), None, datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=120) | st.sampled_from(["<script>alert(1)</script>", '"><img src=x onerror=1>', "&amp;"])
)
def test_model_text_in_the_timeline_is_text(text: str) -> None:
    html = pages.decisions(Page((_row(text),), 50), None, 1)
    seen = _Seen()
    seen.feed(html)
    assert seen.tags <= TAGS
    assert "script" not in seen.tags and "img" not in seen.tags
    shown = for_plain_terminal(text)
    cut = shown if len(shown) <= 160 else shown[:159] + "…"
    assert cut in seen.cells  # the rationale cell reads back as the text itself
