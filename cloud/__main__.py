"""`python -m cloud` runs the `coldwatch` command line."""

from __future__ import annotations

import sys

from cloud.cli.main import main

sys.exit(main())
