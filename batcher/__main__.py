"""``python -m batcher``."""

import sys

from batcher.cli import main

sys.exit(main())
