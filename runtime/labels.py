"""Label keys stamped on everything the runtime creates.

Ownership is decided by these labels only: cleanup never touches an object without them.
The compose-compatible ones make plain ``docker compose ps/logs`` on a device show the stack.
"""

STACK = "io.armstack.stack"
SERVICE = "io.armstack.service"
CONFIG_HASH = "io.armstack.config-hash"
BUILD_HASH = "io.armstack.build-hash"
# Images carry ownership under keys of their own: a container inherits its image's labels, so
# image labels must never look like the container labels that make a container the stack's.
IMAGE_STACK = "io.armstack.image.stack"
IMAGE_SERVICE = "io.armstack.image.service"
RELEASE = "io.armstack.release"
UPDATE_STRATEGY = "io.armstack.update-strategy"

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
COMPOSE_NETWORK = "com.docker.compose.network"
COMPOSE_VOLUME = "com.docker.compose.volume"
