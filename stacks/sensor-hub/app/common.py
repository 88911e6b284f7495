"""What the three services share: settings from the environment, stopping on SIGTERM, MQTT."""

import os
import signal
import sys
import threading

import paho.mqtt.client as mqtt

MQTT_HOST = os.environ.get("MQTT_HOST", "broker")
MQTT_PORT = int(os.environ.get("MQTT_PORT", "1883"))
DATABASE = os.environ.get("DATABASE", "/data/readings.db")
TOPIC = "sensors"

stopping = threading.Event()


def stop_on_sigterm() -> None:
    """Python as PID 1 ignores SIGTERM unless it handles it: stop cleanly instead."""

    def handle(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def mqtt_client(name: str) -> mqtt.Client:
    """A client that connects in the background and reconnects by itself when the broker goes."""
    client = mqtt.Client(client_id=f"sensor-hub-{name}", clean_session=True)
    client.reconnect_delay_set(min_delay=1, max_delay=10)

    def on_disconnect(client: mqtt.Client, userdata: object, rc: int) -> None:
        if rc != 0:
            print(f"lost the broker (rc={rc}), reconnecting", flush=True)

    client.on_disconnect = on_disconnect
    client.connect_async(MQTT_HOST, MQTT_PORT, keepalive=30)
    client.loop_start()
    return client


def log(*parts: object) -> None:
    print(*parts, flush=True, file=sys.stdout)
