"""`python -m nettop_ui`."""

from nettop_ui.cli import entry

entry()
