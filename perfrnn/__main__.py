"""`python -m perfrnn`: see perfrnn/cli.py."""

import sys

from perfrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
