"""`python -m webapp`: start the website on this machine."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m webapp",
        description="Start the music generator's website: local worker threads, SQLite job "
                    "records and files in the instance folder (instance/ or "
                    "$PERFRNN_INSTANCE), and the styles in bundles/.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--debug", action="store_true", help="Flask's debug mode (never in "
                                                              "production)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from perfrnn.console import import_libraries_quietly

    import_libraries_quietly()
    from webapp import create_app

    try:
        app = create_app()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"the website is at http://{args.host}:{args.port}/  (Ctrl+C stops it)", flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True,
            use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
