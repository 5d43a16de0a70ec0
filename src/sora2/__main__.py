"""`python -m sora2 …`: the `sora2` command where its script is not on PATH."""

import sys

from sora2.cli import main

sys.exit(main())
