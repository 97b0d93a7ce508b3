"""The Auth Server's part of provisioning: the logins it can identify, from ``xosp.users``."""
