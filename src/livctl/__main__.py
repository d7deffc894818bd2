"""`python -m livctl` runs the command-line interface."""

import sys

from livctl.cli import main

sys.exit(main())
