"""nettop-ui backends: one module per source of per-process network byte counts.

Each module defines one `nettop_ui.core.Backend` subclass, registered through the
`nettop_ui.backends` entry-point group in pyproject.toml. Backends import nothing
from Textual or the UI.
"""
