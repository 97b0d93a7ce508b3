"""The applications of the bus, its top layer: the `xbus` CLI, the HTTP API, lag, the monitor,
replay, rebuild and the demo with its scenarios. Nothing below imports them."""
