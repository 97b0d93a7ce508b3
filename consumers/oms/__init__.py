"""The Order Management System: operators registered through its Identity function, trading-account
metadata (currency, allowed exchanges, vetting limits, state), and orders: vetted, routed to the
exchange's adapter through the gateway, followed through their execution reports, with the cash
and holdings positions they draw on (docs/exchanges.md).
"""
