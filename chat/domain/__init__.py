"""The domain: rooms, members and messages; writes (services), reads (selectors) and the events they emit.

It imports only the platform package, never realtime or web (chat/tests/test_layout.py).
"""
