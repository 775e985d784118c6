"""`python -m workers.cli`: what the integration tests start as processes."""

import sys

from workers.cli.main import main

sys.exit(main())
