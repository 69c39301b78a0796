"""The module dramatiq's CLI imports in each worker process: composes the platform, builds the broker
and declares every job on it, then takes what it built out of the collector's way (``platform/heap.py``)."""

from backoffice.platform.heap import freeze_startup_objects
from backoffice.platform.logs import configure_logging
from backoffice.platform.settings import settings_or_exit
from backoffice.platform.worker.broker import build_broker
from backoffice.web.entry.wiring import compose

settings = settings_or_exit()
configure_logging(settings)
compose()
broker = build_broker(settings)
freeze_startup_objects()
