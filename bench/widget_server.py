"""`nbfreeze serve NOTEBOOK --open` with an idle timeout the widget bench can shrink.

`runtime.server.serve()` fixes the idle timeout at 30 minutes and culls once a minute,
and `nbfreeze serve` has no option for either, so `bench/widgets.py` runs the same app
through `runtime.server.make_app(notebook, ServeOptions(idle_timeout=...))` in this
script, in its own
process, listening on 127.0.0.1 only. It differs from `serve()` only in that:

- the cull runs every `--cull-every` seconds (default 1) instead of every
  `min(idle_timeout / 4, 60)` seconds;
- SIGUSR1 sets the sessions' idle timeout to `--cull-after` seconds (default 1), so the
  bench can open its sessions under a long timeout, measure them idle, and then have
  the server's own culling close every one of them (and give their memory back);
- a cull that closed sessions prints `culled N, M open` on stdout once it has returned
  (its `release_memory()` included), so the bench knows when to read the RSS;
- SIGUSR2 calls `runtime.session.release_memory()` once more and prints `released`:
  a diagnostic, to tell memory the culled sessions still hold from memory the
  allocator keeps.

    .venv/bin/python bench/widget_server.py NOTEBOOK_OR_BUNDLE --port 8870
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tornado.ioloop import PeriodicCallback

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from freezer.cli import bundle_for  # noqa: E402
from runtime import bundle  # noqa: E402
from runtime.host.session import Sessions, release_memory  # noqa: E402
from runtime.server import MAX_BODY_BYTES, MAX_FRAME_BYTES, ServeOptions, make_app  # noqa: E402


async def run(target: Path, port: int, idle_timeout: float, cull_every: float, cull_after: float):
    built = bundle_for(target)
    if built is None:
        raise SystemExit(f"{target}: could not be built")
    app = make_app(bundle.load(built), ServeOptions(open_access=True, idle_timeout=idle_timeout))
    app.listen(
        port, address="127.0.0.1", max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_FRAME_BYTES
    )
    sessions: Sessions = app.settings["sessions"]

    async def cull() -> None:
        culled = await sessions.cull()
        if culled:
            print(f"culled {culled}, {len(sessions)} open", flush=True)

    PeriodicCallback(cull, cull_every * 1000).start()

    def shrink() -> None:
        logging.getLogger(__name__).info("idle timeout now %.1f s", cull_after)
        sessions.idle_timeout = cull_after

    def release() -> None:
        release_memory()
        print("released", flush=True)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, shrink)
    loop.add_signal_handler(signal.SIGUSR2, release)
    print(f"Serving http://127.0.0.1:{port}/", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", type=Path, help="a .ipynb file or a bundle directory")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=3600.0)
    parser.add_argument("--cull-every", type=float, default=1.0)
    parser.add_argument("--cull-after", type=float, default=1.0)
    args = parser.parse_args()
    # As serve() logs: one line per request and per session opened or closed.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(
            run(args.target, args.port, args.idle_timeout, args.cull_every, args.cull_after)
        )
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
