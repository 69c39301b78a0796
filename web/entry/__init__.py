"""The composition root and the process entry points: the top of the house.

``wiring.compose()`` is the one place where the layers are put together: it registers every connector
kind, routine, process step, job and scheduler loop, and plugs the connectors into the ports the domain
and the kernel define. The entry points (``cli``, ``runtime``, ``worker``, ``demo``) call it first;
nothing below ``web/`` imports this package.
"""
