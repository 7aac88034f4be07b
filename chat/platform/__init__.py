"""Platform pieces the other packages share: logs, health checks, database health, outages, limits, Redis clients.

It imports nothing of domain, realtime or web (chat/tests/test_layout.py).
"""
