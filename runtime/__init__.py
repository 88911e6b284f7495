"""armstack runtime: the device-side supervisor of a compose stack (`armstack up`).

observe → plan → apply: ``compose`` loads and validates the file, ``planner`` decides (pure),
``executor`` is the only code that calls the engine, ``supervisor`` runs the event-driven loop.
"""
