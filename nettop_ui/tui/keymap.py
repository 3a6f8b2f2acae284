"""User keymaps: `$XDG_CONFIG_HOME/nettop-ui/keymap.toml` maps binding ids to keys.

    [keys]
    sort_sent = "x"
    quit = "q,f10"

The ids are those in `nettop_ui.tui.bindings` (also shown by `?`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nettop-ui" / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The keymap, and a one-line problem with the file if it could not be used."""
    path = path or keymap_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, f"{path}: {exc}"
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        return {}, f"{path}: [keys] must map binding ids to key strings"
    return dict(keys), None
