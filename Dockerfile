# armstack runtime images (legacy builder compatible: no BuildKit-only syntax).
#
#   runtime     python + the runtime package; runs against an engine reached through DOCKER_HOST
#               docker build --platform linux/arm64 --target runtime -t armstack/runtime .
#   all-in-one  runtime + Debian's dockerd, /data/docker bound over /var/lib/docker: for a board
#               that runs one privileged container (the way the resin.io recipe did)
#               docker build --platform linux/arm/v7 --target all-in-one -t armstack/device .
#
# BASE defaults to the official python image; the harness passes its offline stand-in.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS python-deps
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/armstack/bin:$PATH PYTHONPATH=/opt/armstack/src \
    ARMSTACK_DATA_DIR=/data/armstack
# Dependencies first: this layer stays cached while the runtime's code changes. A base that already
# has the venv is used as it is (the test kit makes one on its host: pip under emulation is slow).
RUN if [ -x /opt/armstack/bin/python ]; then /opt/armstack/bin/python -c "import docker, yaml"; else \
    python3 -m venv /opt/armstack \
 && /opt/armstack/bin/pip install --no-cache-dir --disable-pip-version-check "docker>=6.1" "PyYAML>=6.0"; fi

FROM python-deps AS runtime
COPY runtime /opt/armstack/src/runtime
RUN printf '#!/bin/sh\nexec /opt/armstack/bin/python -m runtime "$@"\n' > /opt/armstack/bin/armstack \
 && chmod 755 /opt/armstack/bin/armstack \
 && /opt/armstack/bin/python -m compileall -q /opt/armstack/src/runtime
ENTRYPOINT ["armstack"]
CMD ["up", "-f", "/usr/src/app/docker-compose.yml"]

# The engine's packages sit below the runtime's code, so a code change does not download them again.
FROM python-deps AS device-engine
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker.io iptables e2fsprogs procps \
 && rm -rf /var/lib/apt/lists/*

FROM device-engine AS all-in-one
COPY --from=runtime /opt/armstack /opt/armstack
COPY runtime/assets/all-in-one-entrypoint.sh /usr/local/bin/armstack-device
RUN chmod 755 /usr/local/bin/armstack-device
VOLUME /data
WORKDIR /usr/src/app
# With no arguments it supervises /data/stack if a stack was pushed there, else /usr/src/app
# (a stack baked into an image FROM this one); arguments go to `armstack up`.
ENTRYPOINT ["/usr/local/bin/armstack-device"]
