"""`python -m nettop_ui`."""

import sys

from nettop_ui.cli import main

sys.exit(main())
