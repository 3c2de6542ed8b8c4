"""``python -m attune_packs.buildspec.tools <command>`` (the shipped zip application runs the same)."""

import sys

from .cli import main

sys.exit(main())
