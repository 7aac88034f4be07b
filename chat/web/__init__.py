"""The web pages: views, forms, URLs and the admin.

They import the domain, the platform and the realtime pieces a page shows (presence, the history frame,
the build id); realtime never imports them (chat/tests/test_layout.py).
"""
