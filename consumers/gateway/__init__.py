"""The gateway: runs each exchange's OMS adapter, turning routed instructions into execution reports."""
