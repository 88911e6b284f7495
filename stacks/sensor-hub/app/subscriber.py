"""Stores every reading published under ``sensors/#`` in SQLite (on the ``readings`` volume)."""

import contextlib
import json
import os
import sqlite3
import sys

import paho.mqtt.client as mqtt
from common import DATABASE, TOPIC, log, mqtt_client, stop_on_sigterm, stopping

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_sensor_ts ON readings (sensor, ts);
"""


def open_database(path: str) -> sqlite3.Connection:
    """WAL mode lets the dashboard read while we write."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    return db


def healthy(path: str) -> bool:
    """The healthcheck: the database answers, and no /tmp/unhealthy switch is set (a restart clears /tmp)."""
    if os.path.exists("/tmp/unhealthy"):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            db.execute("SELECT COUNT(*) FROM readings").fetchone()
    except sqlite3.Error:
        return False
    return True


def main() -> None:
    if "--check" in sys.argv:
        sys.exit(0 if healthy(DATABASE) else 1)
    stop_on_sigterm()
    db = open_database(DATABASE)
    stored = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    log(f"storing readings in {DATABASE} ({stored} so far)")

    def on_connect(client: mqtt.Client, userdata: object, flags: dict[str, int], rc: int) -> None:
        # Subscribe on every (re)connect: a restarted broker has forgotten us.
        client.subscribe(f"{TOPIC}/#", qos=1)
        log(f"subscribed to {TOPIC}/# (rc={rc})")

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal stored
        try:
            r = json.loads(msg.payload)
            db.execute("INSERT INTO readings (sensor, value, unit, ts) VALUES (?, ?, ?, ?)",
                       (str(r["sensor"]), float(r["value"]), str(r["unit"]), float(r["ts"])))
        except (ValueError, KeyError, TypeError) as e:
            log(f"skipped a bad message on {msg.topic}: {e}")
            return
        stored += 1
        if stored % 100 == 0:
            log(f"stored {stored} readings")

    client = mqtt_client("subscriber")
    client.on_connect = on_connect
    client.on_message = on_message
    stopping.wait()
    client.loop_stop()
    client.disconnect()
    db.close()


if __name__ == "__main__":
    main()
