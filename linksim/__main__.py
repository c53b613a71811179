"""``python -m linksim …``: the command line (the same as the ``linksim`` script)."""

import sys

from linksim.cli import main

if __name__ == "__main__":
    sys.exit(main())
