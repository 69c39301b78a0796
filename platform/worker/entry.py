"""The module dramatiq's CLI imports in each worker process: builds the broker and every job."""

from backoffice.platform.runtime import configure_logging
from backoffice.platform.settings import settings_or_exit
from backoffice.platform.worker.broker import build_broker

settings = settings_or_exit()
configure_logging(settings)
broker = build_broker(settings)
