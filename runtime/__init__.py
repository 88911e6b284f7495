"""armstack runtime: the device-side supervisor of a compose stack (`armstack up`).

observe → plan → apply: ``compose`` loads and validates the file, ``planner`` decides (pure),
``executor`` turns actions into engine calls (made by ``engine``), ``supervisor`` runs the
event-driven loop.
"""
