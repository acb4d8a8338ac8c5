"""Source adapters: bytes in, observations and items out.

``feeds`` never imports ``warnd``. Each adapter is one class in one file, registered
by its ``kind`` string in :mod:`feeds.registry`.
"""
