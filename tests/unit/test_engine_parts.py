"""Pure parts of the engine operations: reading a build's output, the stop and downtime records."""

from __future__ import annotations

import pytest

from runtime.engine.buildlog import BuildLog
from runtime.engine.marks import Downtime, PurposefulStops

pytestmark = pytest.mark.unit

LABELS = ("LABEL io.armstack.stack=",)


def feed(log: BuildLog, *lines: str) -> list[str]:
    return log.feed({"stream": "".join(line + "\n" for line in lines)})


def test_a_build_log_counts_steps_cache_hits_and_new_layers() -> None:
    log = BuildLog(LABELS)
    shown = feed(log,
                 "Step 1/4 : FROM alpine", " ---> 0123456789ab",
                 "Step 2/4 : RUN a", " ---> Using cache", " ---> 1111111111aa",
                 "Step 3/4 : RUN b", " ---> Running in 2222", " ---> 3333333333bb", "",
                 "Step 4/4 : LABEL io.armstack.stack=demo", " ---> 4444444444cc",
                 "Successfully built 4444444444cc")
    assert (log.steps, log.cached) == (3, 1)
    # The base (FROM) and the cache hit are not new; the runtime's LABEL step is not the Dockerfile's.
    assert log.made == ["3333333333bb", "4444444444cc"]
    assert log.image_id == "4444444444cc"
    assert "" not in shown and shown[0] == "Step 1/4 : FROM alpine"


def test_a_build_log_prefers_the_aux_id_and_keeps_errors() -> None:
    log = BuildLog(LABELS, made=["earlier"])
    assert log.feed({"aux": {"ID": "sha256:abc"}}) == []
    feed(log, "Successfully built 4444444444cc")
    assert log.image_id == "sha256:abc"
    assert log.feed({"error": " no space left on device \n"}) == []
    assert log.errors == ["no space left on device"] and log.made == ["earlier"]


def test_purposeful_stops_match_short_and_full_ids() -> None:
    stops = PurposefulStops()
    stops.add("abcdef123456")
    assert stops.expected("abcdef123456789") and stops.expected("abcdef")
    assert not stops.expected("bcdef")
    stops.forget("abcdef123456")
    assert not stops.expected("abcdef123456")


def test_downtime_runs_from_the_first_mark_to_the_end() -> None:
    down = Downtime()
    assert down.end("web", 5.0) is None
    down.mark("web", 10.0)
    down.mark("web", 12.0)   # a later step of the same update: still down since 10
    assert down.end("web", 13.5) == 3.5
    assert down.end("web", 20.0) is None   # forgotten once ended
