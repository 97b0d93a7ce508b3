"""The Order Management System's provisioning side: operators registered through its Identity
function and trading-account metadata (currency, allowed exchanges, vetting limits, state).

Orders, and funds when registry settlement is off, join it with the exchanges work.
"""
