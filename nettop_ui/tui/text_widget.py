"""A widget drawn from one `Text`, repainted only when that text changed.

The header and the system panels are told the new state every tick (and the header
every second besides), but on a quiet machine most of them show what they showed
before: the GPU panel without a GPU, the NET panel's idle interfaces. Each repaint
costs Textual about a millisecond of styling and compositing per panel, so
`show_text` makes the text and compares it (characters and styles) with the one on
screen, and repaints only when they differ. A new size always makes it again.
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget


class TextWidget(Widget):
    """Subclasses say what to draw in `make_text`, and call `show_text` after a change."""

    _text: Text | None = None
    _text_size: Size | None = None

    def make_text(self) -> Text:
        raise NotImplementedError

    def show_text(self) -> None:
        """Make the text for the state now; repaint if it is not the one on screen."""
        text = self.make_text()
        if text != self._text or self.size != self._text_size:
            self._text, self._text_size = text, self.size
            self.refresh()

    def render(self) -> Text:
        if self._text is None or self._text_size != self.size:
            self._text, self._text_size = self.make_text(), self.size
        return self._text
