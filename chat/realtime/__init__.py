"""The realtime transport: websocket consumers, the wire formats, the hub, presence and broadcast.

It imports the domain and the platform, never web (chat/tests/test_layout.py).
"""
