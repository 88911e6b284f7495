"""Who owns a network or a volume on the engine — pure, no engine calls.

Engine names are ``<project>_<name>`` and both parts may contain ``_``: project ``app_db``
with volume ``data`` and project ``app`` with volume ``db_data`` are both ``app_db_data``.
So a name never proves ownership; the labels stamped at create time do:

ours
    labelled with this project (``io.armstack.stack``, or compose's
    ``com.docker.compose.project`` for objects ``docker compose`` made for the same project).
    Used, and removed by ``down -v`` / ``down``.
foreign
    labelled with another project. Refused with an :class:`EngineError`: mounting another
    project's volume would hand it this stack's writes, and ``down -v`` would delete its data.
    ``docker compose`` only warns for volumes (and refuses networks whose
    ``com.docker.compose.network`` label differs, which is what a collision gives); refusing
    both is deliberate, because the warning is exactly the silent mount described above.
unlabelled
    made by hand or by an armstack release that did not label it. Used with a warning, as
    ``docker compose`` does, and never removed: nothing says it is the stack's.

:func:`resource_labels` builds the labels of a network or volume the runtime creates; the
runtime's own keys go last so a compose ``labels:`` entry can never claim another owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from runtime import labels as L
from runtime.errors import EngineError

Kind = Literal["network", "volume"]
Verdict = Literal["ours", "foreign", "unlabelled"]

_NAME_KEY = {"network": L.COMPOSE_NETWORK, "volume": L.COMPOSE_VOLUME}


def owner_of(labels: Mapping[str, str] | None) -> str:
    """The project an engine object is labelled for; ``""`` when it carries no project label."""
    labels = labels or {}
    return labels.get(L.STACK) or labels.get(L.COMPOSE_PROJECT) or ""


def verdict(labels: Mapping[str, str] | None, project: str) -> Verdict:
    owner = owner_of(labels)
    if not owner:
        return "unlabelled"
    return "ours" if owner == project else "foreign"


def resource_labels(kind: Kind, project: str, name: str, *, user: Mapping[str, str] | None = None,
                    extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels for a network/volume the stack creates: compose ``labels:``, extra labels, then ours.

    ``name`` is the stack-level name (as written in the file), stamped as compose does.
    """
    out = dict(user or {})
    out.update(extra or {})
    out.update({L.STACK: project, L.COMPOSE_PROJECT: project, _NAME_KEY[kind]: name})
    return out


def check_existing(kind: Kind, engine_name: str, labels: Mapping[str, str] | None, project: str) -> str | None:
    """Vet an existing object the stack is about to use: raise if another project owns it.

    Returns a warning sentence for an unlabelled object (it is used anyway, as compose does),
    None for one of ours.
    """
    found = verdict(labels, project)
    if found == "foreign":
        raise EngineError(
            f"The {kind} {engine_name!r} already exists and belongs to project {owner_of(labels)!r}, not "
            f"{project!r}: engine names are <project>_<name>, so the two projects' names collide. It was not "
            f"used. Rename the {kind} in the compose file, use another project name (-p), or declare it "
            f"'external: true' with 'name: {engine_name}' if sharing it is intended.")
    if found == "unlabelled":
        return (f"the {kind} {engine_name!r} exists but was not created by armstack or docker compose for "
                f"project {project!r}; using it. It is never removed by `down`; declare it 'external: true' to "
                f"say it is shared on purpose.")
    return None


def removable(labels: Mapping[str, str] | None, project: str) -> bool:
    """Whether ``down`` may remove the object: only one labelled as this project's."""
    return verdict(labels, project) == "ours"
