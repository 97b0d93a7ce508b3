"""Session Management: session pools, and each login's pool and limits, from ``xosp.users`` and
``xosp.session_pools``.

A login with a session policy gets its pool's limits with its own overrides applied
(``SessionLimitsAssigned``), and follows its pool when the pool changes (``SessionLimitsChanged``);
a login whose policy is removed has no limits (``SessionLimitsRemoved``); a disabled login has its
sessions ended (``SessionsEnded``).
"""
