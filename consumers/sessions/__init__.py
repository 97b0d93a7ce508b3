"""Session Management: per-login session pool and limits, from ``xosp.users``.

A login with a session policy gets its pool's limits with its own overrides applied
(``SessionLimitsAssigned``); a disabled login has its sessions ended (``SessionsEnded``).
"""
