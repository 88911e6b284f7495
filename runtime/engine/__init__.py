"""The engine operations of one stack, a module per kind of object; ``runtime.executor`` dispatches to them.

``session`` holds what every part shares (the API, the desired stack, the output, the one way a
docker-py failure becomes a sentence); ``reading`` observes the stack; ``resources`` creates and
removes networks and volumes; ``images`` builds, pulls and removes images (``buildlog`` reads a
build's output); ``creating`` turns a service into a created container; ``hooks`` runs its
post_start/pre_stop hooks; ``lifecycle`` starts, stops, restarts and replaces containers;
``marks`` keeps the stops the runtime made on purpose and when an update took a service down.
Together with ``runtime.diskio`` these are the only code that calls the engine.
"""
