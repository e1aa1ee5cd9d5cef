"""``python -m datasets``: see :mod:`datasets.cli`."""

from datasets.cli import main

raise SystemExit(main())
