"""Image references in the one form the engine lists them in — pure.

``docker.io/library/postgres:14``, ``docker.io/postgres:14``, ``index.docker.io/library/postgres:14``
and ``postgres:14`` name the same image, and the engine lists it under ``RepoTags`` as
``postgres:14`` (the "familiar" form of docker's reference package: Docker Hub's domain and its
``library/`` namespace dropped, ``:latest`` added when neither a tag nor a digest is given).
Comparing references in any other form makes an image that is present look missing.
"""

from __future__ import annotations

HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def _split_domain(name: str) -> tuple[str, str]:
    """(domain, path) as docker's reference package splits a name."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return HUB, name


def normalize_ref(ref: str) -> str:
    """The familiar form of an image reference: ``docker.io/library/postgres:14`` → ``postgres:14``.

    Image ids (``sha256:...``) are returned unchanged.
    """
    ref = ref.strip()
    if ref.startswith("sha256:"):
        return ref
    name, at, digest = ref.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    domain, path = _split_domain(name)
    if domain in _HUB_ALIASES:
        domain = HUB
        path = path.removeprefix("library/") if path.count("/") == 1 and path.startswith("library/") else path
    familiar = path if domain == HUB else f"{domain}/{path}"
    if at:
        return f"{familiar}{':' + tag if tag else ''}@{digest}"
    return f"{familiar}:{tag or 'latest'}"


def same_image(a: str, b: str) -> bool:
    """Whether two references name the same image tag (or digest)."""
    return normalize_ref(a) == normalize_ref(b)
