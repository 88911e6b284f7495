"""``make demo``: boot a stack on an emulated arm64 device, stream its logs, crash a service, watch it recover."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from harness.device import EmulatedDevice
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent


def _stream(device: EmulatedDevice, stop: threading.Event) -> None:
    """Print the runtime's prefixed output as it comes, like `docker compose logs -f`."""
    container = device.runtime_container()
    for chunk in container.logs(stream=True, follow=True):
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
        if stop.is_set():
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="arm64")
    parser.add_argument("--stack", default=str(REPO / "stacks" / "minimal"))
    parser.add_argument("--crash", default="server", help="the service to kill")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so devices are removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"== starting an emulated {args.arch} device", flush=True)
        t0 = time.monotonic()
        with EmulatedDevice(arch=args.arch, disk="2G") as device:
            print(f"== device {device.name} up in {time.monotonic() - t0:.1f}s; deploying {args.stack}", flush=True)
            device.deploy(args.stack)
            stop = threading.Event()
            threading.Thread(target=_stream, args=(device, stop), daemon=True).start()
            for service in device.services():
                device.wait_until_running(service, timeout=60)
            uname = device.exec(args.crash, "uname -m").output.strip()
            print(f"\n== stack running; {args.crash} reports `uname -m` = {uname}", flush=True)
            time.sleep(3)  # let the logs show the stack working before the fault
            before = device.services()[args.crash].container_id
            print(f"\n== SIGKILL of {args.crash}'s main process (a real crash)", flush=True)
            t1 = time.monotonic()
            device.crash(args.crash)

            def restarted() -> bool:
                return (device.services()[args.crash].restarts or 0) > 0

            from harness.waits import wait_for
            wait_for(restarted, device.timeout(30), f"{args.crash} to be restarted")
            device.wait_until_running(args.crash, timeout=60)
            state = device.services()[args.crash]
            print(f"\n== {args.crash} running and healthy again {time.monotonic() - t1:.2f}s after the crash "
                  f"(same container: {state.container_id == before}, restarts: {state.restarts})", flush=True)
            time.sleep(3)
            stop.set()
            print("\n== stopping the device (everything it created is removed)", flush=True)
        return 0
    except HarnessError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
