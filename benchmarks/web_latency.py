"""How quickly the website turns a request into a MIDI file, and how much
memory the server holds with every shipped style loaded.

Starts `python -m webapp` on 127.0.0.1 with a fresh instance folder (or
uses --url), waits until every style is loaded and compiled, then times:

- one user: POST /api/v1/generations (30 s of piano) until the MIDI file
  has been downloaded, repeated --requests times;
- --users users at once, each doing --requests-per-user requests.

It reports the server's CPU per request (its render processes included),
for the one user and for the crowd.

Targets (issue 5): one user, warm, median <= 2 s; server RSS <= 1.5 GB.

`--code DIR` (repeatable) runs the server of another checkout too (e.g. the
code before a change, from `git archive COMMIT | tar -x -C DIR`): each round
starts each code's server in turn, so a busy machine slows them alike, and
the medians over `--rounds` are printed per code at the end.

    .venv/bin/python benchmarks/web_latency.py
    .venv/bin/python benchmarks/web_latency.py --url http://127.0.0.1:5000 --style rock
    .venv/bin/python benchmarks/web_latency.py --code /tmp/before --code . --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from local_server import (
    ROOT,
    cpu_seconds,
    rss_mib,
    start_server,
    stop_server,
    wait_idle,
    wait_ready,
)


def request(method: str, url: str, body: dict | None = None, timeout: float = 120):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read()


def one_generation(base: str, style: str, seconds: float, quality: str | None = None) -> float:
    """Seconds from POST to the downloaded MIDI file. The client follows the
    job's progress stream (Server-Sent Events), as the page does."""
    started = time.perf_counter()
    fields = {"style": style, "seconds": seconds}
    if quality:
        fields["quality"] = quality
    status, body = request("POST", f"{base}/api/v1/generations", fields)
    job = json.loads(body)["job"]
    with urllib.request.urlopen(f"{base}/api/v1/jobs/{job['id']}/events",
                                timeout=120) as stream:
        for line in stream:
            if line.startswith(b"data: "):
                job = json.loads(line[6:])
                if job["state"] in ("done", "failed", "cancelled", "expired"):
                    break
    if job["state"] != "done":
        raise RuntimeError(f"job {job['id']} {job['state']}: {job.get('error')}")
    _, midi = request("GET", f"{base}/api/v1/generations/{job['id']}/midi")
    if not midi.startswith(b"MThd"):
        raise RuntimeError("the download is not a MIDI file")
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5077, help="port of the started server")
    parser.add_argument("--style", default="piano", help="style to generate (default piano)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length (default 30)")
    parser.add_argument("--quality", choices=("fast", "better", "best"), default=None,
                        help="candidates per piece (default: the server's, better)")
    parser.add_argument("--requests", type=int, default=10,
                        help="sequential requests of one user (default 10)")
    parser.add_argument("--users", type=int, default=8, help="concurrent users (default 8)")
    parser.add_argument("--no-audio", action="store_true",
                        help="start the server with RENDER_AUDIO off (no WAV per piece)")
    parser.add_argument("--workers", type=int, default=None,
                        help="GENERATION_WORKERS of the started server (default: the server's)")
    parser.add_argument("--batch", type=int, default=8,
                        help="GENERATION_BATCH of the started server (default 8; 1: no batching)")
    parser.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                        help="another setting of the started server (webapp/config.py), e.g. "
                             "--set SAMPLER_THREADS=0; may be repeated")
    parser.add_argument("--requests-per-user", type=int, default=3,
                        help="requests per concurrent user (default 3)")
    parser.add_argument("--code", action="append", default=None, metavar="DIR",
                        help="a checkout whose server to run (repeatable; default this one); "
                             "its styles are this checkout's bundles/ unless --set says")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times each code's server is started and measured, in turn")
    args = parser.parse_args(argv)
    if args.url is not None:
        measure(args.url, None, args)
        return 0
    codes = [Path(code).resolve() for code in (args.code or [ROOT])]
    figures: dict[Path, list[dict]] = {code: [] for code in codes}
    for round_number in range(args.rounds):
        for code in codes:
            if len(codes) > 1 or args.rounds > 1:
                print(f"--- round {round_number + 1}: server of {code}")
            with tempfile.TemporaryDirectory() as instance:
                settings = {"BUNDLES_DIR": str(ROOT / "bundles"),
                            **dict(item.split("=", 1) for item in args.set)}
                # Every user comes from 127.0.0.1: the per-client limits would count
                # them as one client, so the started server lifts them.
                server = start_server(Path(instance), args.port, code=code,
                                      RENDER_AUDIO="0" if args.no_audio else "1",
                                      GENERATION_BATCH=str(args.batch),
                                      **({"GENERATION_WORKERS": str(args.workers)}
                                         if args.workers else {}),
                                      **settings,
                                      PRELOAD_STYLES="1", QUEUE_LIMIT="64",
                                      RATE_LIMIT_PER_SECOND="0", MAX_JOBS_PER_CLIENT="1000")
                try:
                    figures[code].append(measure(f"http://127.0.0.1:{args.port}", server, args))
                finally:
                    stop_server(server)
    if len(codes) > 1 or args.rounds > 1:
        print(f"medians of {args.rounds} round(s) (each figure's values in brackets):")
        for code, runs in figures.items():
            line = []
            for name in ("one_user_median", "one_user_cpu", "p50", "p95", "crowd_cpu"):
                values = [run[name] for run in runs if run.get(name) is not None]
                if values:
                    line.append(f"{name} {statistics.median(values):.2f} "
                                f"[{', '.join(f'{value:.2f}' for value in values)}]")
            print(f"{code}: {'; '.join(line)}")
    return 0


def measure(base: str, server, args) -> dict:
    """Times one user and then the crowd against the server at `base`
    (`server`: its process, for CPU and memory, or None); prints and returns
    the figures: seconds a request (one_user_median, p50, p95) and
    core-seconds of the server a request (one_user_cpu, crowd_cpu)."""
    figures: dict = {}
    wait_ready(base)
    _, body = request("GET", f"{base}/api/v1/styles")
    names = [style["name"] for style in json.loads(body)["styles"]]
    print(f"server at {base}; styles: {', '.join(names)}")
    for name in names:  # warm: every style loaded and compiled for one variation
        one_generation(base, name, 5)
    if server is not None:  # and its larger batches compiled in the background
        print(f"server idle after {wait_idle(server.pid):.0f} s more")
        print(f"server RSS with every style loaded: {rss_mib(server.pid):.0f} MiB "
              "(target <= 1,500)")

    cpu_before = cpu_seconds(server.pid, children=True) if server is not None else None
    single = [one_generation(base, args.style, args.seconds, args.quality)
              for _ in range(args.requests)]
    figures["one_user_median"] = statistics.median(single)
    print(f"one user, {args.style} {args.seconds:g} s, quality "
          f"{args.quality or 'default'}, {args.requests} requests: "
          f"median {statistics.median(single):.2f} s, min {min(single):.2f} s, "
          f"max {max(single):.2f} s (target median <= 2 s)")
    if cpu_before is not None:
        used = cpu_seconds(server.pid, children=True) - cpu_before
        figures["one_user_cpu"] = used / len(single)
        print(f"server CPU, one user (with its render processes): "
              f"{used / len(single):.2f} core-seconds a request")

    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(number: int) -> None:
        for _ in range(args.requests_per_user):
            try:
                took = one_generation(base, args.style, args.seconds, args.quality)
                with lock:
                    times.append(took)
            except Exception as error:  # reported below
                with lock:
                    errors.append(str(error))

    started = time.perf_counter()
    cpu_before = cpu_seconds(server.pid, children=True) if server is not None else None
    threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if times:
        figures["p50"], figures["p95"] = percentile(times, 0.5), percentile(times, 0.95)
        print(f"{args.users} users at once, {len(times)} requests in {wall:.1f} s: "
              f"p50 {percentile(times, 0.5):.2f} s, p95 {percentile(times, 0.95):.2f} s "
              "(target p95 <= 2 s)")
    if cpu_before is not None and times:
        used = cpu_seconds(server.pid, children=True) - cpu_before
        figures["crowd_cpu"] = used / len(times)
        print(f"server CPU (with its render processes): {used / len(times):.2f} "
              f"core-seconds a request, {used / wall:.2f} cores busy on average")
    if errors:
        print(f"{len(errors)} requests failed, e.g.: {errors[0]}")
    if server is not None:
        print(f"server RSS after the run: {rss_mib(server.pid):.0f} MiB")
    return figures


if __name__ == "__main__":
    sys.exit(main())
