"""`python -m freezer` is the `nbfreeze` command."""

import sys

from freezer.cli import main

sys.exit(main())
