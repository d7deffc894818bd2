"""`livctl` with the test backend `rig://` (tests/realish_backend.py: the simulator reporting itself
as real hardware), for tests that run livctl as a process on a "real" platform:
`python tests/livctl_rig.py session --device rig://?id=rig-1 ...`."""

import sys

from livctl import platforms
from livctl.cli import main

platforms.BACKENDS["rig"] = "realish_backend"

if __name__ == "__main__":
    sys.exit(main())
