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
    parser.add_argument("--debug", action="store_true",
                        help="Flask's development server in debug mode (never in production; "
                             "the default is the waitress WSGI server)")
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
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, threaded=True, use_reloader=False)
        return 0
    from waitress import serve

    # Each open progress stream holds a thread (at most MAX_EVENT_STREAMS of them);
    # an empty ident sends no Server header.
    serve(app, host=args.host, port=args.port, threads=int(app.config["SERVER_THREADS"]),
          ident="", channel_timeout=120, connection_limit=int(app.config["SERVER_THREADS"]) * 4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
