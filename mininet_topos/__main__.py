"""`python -m mininet_topos NAME [--controller HOST:PORT] [--api URL] [--register] [--cli] [--prefix P]`."""

import sys

from .launcher import main

sys.exit(main())
