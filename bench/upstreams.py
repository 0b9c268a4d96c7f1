"""What the pipeline talks to, in a process of its own: fake Partner API, HTTP sink, mailbox.

Run by the harness as `python -m bench.upstreams <results.json>`. Prints one JSON line with
the three ports once they listen; on SIGTERM writes every sink request and email it received
(with the time it arrived, epoch seconds) to <results.json> and exits. Its own process, so
its event loop's delays are not charged to the receiver or the load generator.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bench.events import API_KEY, hub_state
from receiver.dev.fake_hub import create_fake_hub_app
from receiver.dev.mailbox import run_mailbox
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app


async def serve() -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sink = SinkState()
    hub = hub_state()
    with run_mailbox() as mailbox:
        async with (
            serve_app(create_fake_hub_app(hub, api_key=API_KEY)) as hub_url,
            serve_app(create_sink_app(sink)) as sink_url,
        ):
            ports = {
                "hub": int(hub_url.rsplit(":", 1)[1]),
                "sink": int(sink_url.rsplit(":", 1)[1]),
                "mail": mailbox.port,
            }
            print(json.dumps(ports), flush=True)
            await stop.wait()
        return {
            "sink": [
                {"at": r.received_at.timestamp(), "status": r.status, "body": r.body}
                for r in sink.received
            ],
            "mail": [
                {"at": m.received_at.timestamp(), "to": list(m.to), "body": m.body}
                for m in mailbox.messages
            ],
            "hub_requests": len(hub.requests),
        }


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(asyncio.run(serve())))
