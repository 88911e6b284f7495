"""Your compose stack on an emulated ARM device: crash it, fill its SD card, check it copes.

Copy this file next to your stack, point STACK at the folder with your compose file and use
your own service names and log lines. Run it with ``pytest test_my_stack.py`` (add
``--arch armv7`` for a 32-bit board). See docs/testing-your-stack.md.
"""

from pathlib import Path

from harness.waits import wait_for

STACK = Path(__file__).parent / ".." / "stacks" / "minimal"  # the folder with your compose.yaml


def lines(device, service, text):
    """How many of the service's log lines (as the device prints them) contain ``text``."""
    return sum(text in line for line in device.logs(service))


def test_my_stack_recovers(arm_device):
    arm_device.deploy(STACK)                          # builds the images on the device, starts the stack
    arm_device.wait_until_running("server", timeout=60)

    arm_device.crash("server")                        # SIGKILL of its main process: a real crash
    wait_for(lambda: arm_device.services()["server"].restarts == 1, arm_device.timeout(10), "the restart")
    arm_device.wait_until_running("server", timeout=60)
    wait_for(lambda: lines(arm_device, "server", "listening") == 2, arm_device.timeout(10), "its second start")

    arm_device.fill_disk(95)                          # the SD card nearly full: the stack keeps working
    hits = lines(arm_device, "client", "hits:")
    wait_for(lambda: lines(arm_device, "client", "hits:") >= hits + 3, arm_device.timeout(10), "more hits")
    assert arm_device.services()["client"].restarts == 0
    arm_device.free_disk()
