"""The OpenMeter-compatible surface (``/api/v1``, ``/api/v2``), thin over creditflow's own core.

Pure modules (no FastAPI, Kafka or Redis): :mod:`api.openmeter.cloudevents` (CloudEvents to
call events), :mod:`api.openmeter.meters` (the two meters, query translation, CSV),
:mod:`api.openmeter.problems` is the error shape, :mod:`api.openmeter.view` the one adapter
to the serving view; the rest are routes. Mapping and limits: ``docs/openmeter.md``.
"""
