"""Untrusted text (process names, command lines, user names) made safe for one table row.

A process can name itself anything: Rich markup (`[red]`), terminal escape sequences,
newlines, bidi overrides that reorder the rest of the line, 100 KB of argv. `safe_text`
turns every control character into a visible escape and truncates; callers put the
result in a `rich.text.Text`, which is never parsed as markup.
"""

from __future__ import annotations

ELLIPSIS = "…"

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x1B: "\\e"}
# Bidi embeddings/overrides/isolates and marks, and the Unicode line separators: each can
# reorder or break the rest of the row in a terminal.
_FORMAT = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_FORMAT += [0x2028, 0x2029, 0xFEFF]


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]:
        table[code] = _NAMED.get(code, f"\\x{code:02x}")
    for code in _FORMAT:
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escape_table()


def safe_text(text: str | None, limit: int = 256) -> str:
    """`text` with control and bidi characters shown as escapes, at most `limit` chars.

    Only the head of a huge string is looked at, so a 100 KB cmdline costs nothing.
    None becomes "-" (unknown).
    """
    if text is None:
        return "-"
    head = text[: limit + 1].translate(_ESCAPES)
    if len(head) > limit or len(text) > limit:
        return head[: max(limit - 1, 0)] + ELLIPSIS
    return head


def command_line(name: str, cmdline: tuple[str, ...] | list[str], limit: int = 256) -> str:
    """The program column: the process name, then its arguments (argv[1:]) when known."""
    if not cmdline:
        return safe_text(name, limit)
    args = " ".join(cmdline[1:])
    return safe_text(f"{name} {args}" if args else name, limit)
