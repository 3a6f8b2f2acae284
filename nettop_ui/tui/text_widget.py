"""A widget drawn from one `Text`, repainting only the lines of it that changed.

The header and the system panels are told the new state every tick (and the header
every second besides), but on a quiet machine most of what they show is what they
showed before: the GPU panel without a GPU, the NET panel's idle interfaces, the
borders and blank lines of every box. Textual repaints a widget's every line, and
composites every widget across each repainted screen line, so `show_text` makes the
text, compares it line by line (characters and styles) with the one on screen, and
repaints only the lines that differ. Each line is drawn on its own (`render_line`)
and kept until it changes. A new size draws every line again.
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class TextWidget(Widget):
    """Subclasses say what to draw in `make_text`, and call `show_text` after a change."""

    _text: Text | None = None
    _lines: tuple[Text, ...] = ()  # `_text`, a line each
    _text_size: Size | None = None
    _drawn: dict[int, tuple[tuple[object, ...], Strip]] | None = None  # y -> (for, line)

    def make_text(self) -> Text:
        raise NotImplementedError

    def show_text(self) -> None:
        """Make the text for the state now; repaint the lines that are not on screen."""
        text = self.make_text()
        if self._text is None or self.size != self._text_size:
            self._take(text)
            self.refresh()
            return
        lines = _lines_of(text)
        was, self._text, self._lines = self._lines, text, lines
        if len(lines) != len(was):
            self.refresh()
            return
        width = self.size.width
        changed = [
            Region(0, y, width, 1)
            for y, (a, b) in enumerate(zip(lines, was, strict=True))
            if a != b
        ]
        if changed:
            self.refresh(*changed)

    def _take(self, text: Text) -> None:
        self._text, self._lines, self._text_size = text, _lines_of(text), self.size

    def _current(self) -> Text:
        """The text for this size (made now if there is none yet, or the size changed)."""
        if self._text is None or self._text_size != self.size:
            self._take(self.make_text())
        assert self._text is not None
        return self._text

    def render(self) -> Text:
        return self._current()

    def render_line(self, y: int) -> Strip:
        """Line `y` of the text, drawn as Textual draws a one-line `Text`."""
        self._current()
        if self.text_selection is not None:  # a selection spans lines: drawn whole
            return super().render_line(y)
        line = self._lines[y] if y < len(self._lines) else Text()
        width, style = self.size.width, self.visual_style
        drawn_for = (line, width, style)
        if self._drawn is None:
            self._drawn = {}
        was = self._drawn.get(y)
        if was is not None and was[0] == drawn_for:
            return was[1]
        base = style.rich_style
        segments = line.render(self.app.console)  # its spans' styles over the widget's
        strip = Strip(segments).apply_style(base).adjust_cell_length(width, base).simplify()
        self._drawn[y] = (drawn_for, strip)
        return strip


def _lines_of(text: Text) -> tuple[Text, ...]:
    lines = tuple(text.split("\n", allow_blank=True))
    for line in lines:  # as the whole text is drawn
        line.no_wrap, line.overflow, line.end = text.no_wrap, text.overflow, ""
    return lines
