"""The consumer runtime and one package per service (authentication, authorisation, ...).

Empty until the consumer-runtime issue: services share only ``schemas`` and that runtime.
"""
