"""Publishes simulated sensor readings to ``sensors/<sensor>`` once per interval."""

import json
import os
import random
import time

from common import TOPIC, log, mqtt_client, stop_on_sigterm, stopping

# name -> (unit, start value, largest step per reading)
SENSORS = {
    "greenhouse-temperature": ("°C", 21.0, 0.3),
    "greenhouse-humidity": ("%", 55.0, 1.0),
    "shed-temperature": ("°C", 14.0, 0.2),
}


def main() -> None:
    stop_on_sigterm()
    interval = float(os.environ.get("PUBLISH_INTERVAL", "1"))
    client = mqtt_client("publisher")
    values = {name: start for name, (_, start, _) in SENSORS.items()}
    seq = 0
    log(f"publishing {len(SENSORS)} sensors every {interval:g}s")
    while not stopping.wait(interval):
        seq += 1
        for name, (unit, _, step) in SENSORS.items():
            values[name] = round(values[name] + random.uniform(-step, step), 2)
            reading = {"sensor": name, "value": values[name], "unit": unit, "seq": seq, "ts": time.time()}
            client.publish(f"{TOPIC}/{name}", json.dumps(reading), qos=1)
        if seq % 30 == 0:
            log(f"published {seq} rounds")
    client.loop_stop()
    client.disconnect()


if __name__ == "__main__":
    main()
