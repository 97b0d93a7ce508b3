"""Resource Authorisation's part of provisioning: per-login permissions and trading-account access."""
