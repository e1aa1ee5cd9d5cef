"""`python -m perfrnn`: see perfrnn/cli.py."""

import sys
import warnings

# pydub, which note-seq imports (perfrnn.options reads chord symbols with it),
# warns on import that it finds no ffmpeg; the command line needs none.
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")

from perfrnn.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
