import sys

from warpd_core.cli import main

sys.exit(main())
