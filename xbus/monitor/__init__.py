"""`xbus monitor`: lag sampled continuously, served as Prometheus gauges, JSON and a live web page.

The sampler (sampler.py) owns the one LagWatcher and keeps the latest report and a short history;
everything served (metrics.py, api.py, the page) only reads what it kept, so a scrape or a page
poll never costs a Kafka round trip.
"""

from xbus.monitor.api import lag_router
from xbus.monitor.app import create_app
from xbus.monitor.metrics import lag_registry
from xbus.monitor.sampler import LagSampler

__all__ = ["LagSampler", "create_app", "lag_registry", "lag_router"]
