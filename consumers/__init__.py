"""The consumer runtime (``consumers.runtime``) and one package per service standing on it
(authentication, authorisation, sessions, provisioning, oms, gateway, registry, market_data).
A service imports the runtime, ``schemas``, ``infrastructure`` and ``exchanges``, never another
service: what two services share belongs in the runtime (docs/architecture.md)."""
