"""Config hashes of containers created by earlier releases must not change on upgrade.

A changed hash recreates every container of every stack on the device the first time the new
release runs. These literals were computed by the release before the service keys added later
(container_name, sysctls, ulimits, long mount options...); a spec that does not use the newer
keys must still hash to exactly the same value.
"""

from __future__ import annotations

import pytest

from runtime.compose import load_text
from runtime.hashing import config_hash

pytestmark = pytest.mark.unit

MINIMAL = """
services:
  web:
    image: nginx:1.25
"""

FULL = """
name: pinned
services:
  app:
    image: registry.local/app:2.1
    command: ["serve", "--port", "8080"]
    entrypoint: /init
    environment:
      MODE: prod
      EMPTY: ""
    ports: ["8080:80", "127.0.0.1:9000:9000/udp"]
    volumes:
      - data:/data
      - ./conf:/etc/app:ro
      - /cache
      - type: bind
        source: /srv/media
        target: /media
        read_only: true
      - type: tmpfs
        target: /scratch
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
      retries: 2
    labels: {team: a}
    privileged: true
    devices: ["/dev/i2c-1:/dev/i2c-1"]
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    tmpfs: /run
    user: "1000"
    working_dir: /app
    hostname: box
    mem_limit: 64m
    cpus: 0.5
    logging:
      driver: local
      options: {max-size: 1m}
    stop_signal: SIGINT
    stop_grace_period: 30s
    networks: [front]
  side:
    image: alpine:3.19
    network_mode: service:app
    volumes_from: [app:ro]
    restart: on-failure:3
    depends_on: [app]
volumes:
  data: {}
networks:
  front: {}
"""

PINNED = {
    ("minimal", "web"): "91f29f9ef147f60bc0b8566418953baa",
    ("full", "app"): "c561a0e43d4b1ab6ab5a304d11eba1af",
    ("full", "side"): "117c74878584810f1417e7936cc428a1",
}


@pytest.mark.parametrize(("file", "service"), sorted(PINNED))
def test_hash_of_a_spec_without_newer_keys_is_unchanged(file: str, service: str) -> None:
    text = {"minimal": MINIMAL, "full": FULL}[file]
    stack = load_text(text, source="compose.yaml", workdir="/srv/stack", project=None, environ={}).stack
    value = config_hash(stack, service, "sha256:" + "ab" * 32, {"app": "c0ffee"})
    assert value == PINNED[(file, service)]
