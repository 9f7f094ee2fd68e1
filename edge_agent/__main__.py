"""`python -m edge_agent` is `coldwatch-agent`."""

import sys

from edge_agent.cli import main

sys.exit(main())
