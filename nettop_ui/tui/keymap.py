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

from nettop_ui.tui.bindings import BINDING_IDS


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nettop-ui" / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The keymap, and a one-line problem with the file if it could not all be used.

    Ids that name no binding are left out and named in the problem; the rest apply.
    """
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
    unknown = sorted(k for k in keys if k not in BINDING_IDS)
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        problem = f"{path}: unknown binding id {names} (ignored; ? lists the ids)"
        return {k: v for k, v in keys.items() if k in BINDING_IDS}, problem
    return dict(keys), None
