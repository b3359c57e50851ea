"""``python -m aria2_sync`` is the ``aria2-sync`` command."""

import sys

from .ui.cli import main

sys.exit(main())
