"""The demo's own moto server process: ``python -m corrtrace.demo.motoserver PORT``.

Like ``moto_server`` but without a log line per request (the demo makes thousands), stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m corrtrace.demo.motoserver PORT", file=sys.stderr)
        return 2
    from corrtrace.demo.processes import exit_with_parent
    from moto.server import ThreadedMotoServer

    exit_with_parent()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(args[0]), verbose=False)
    server.start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
