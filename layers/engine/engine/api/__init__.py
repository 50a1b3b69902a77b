"""The HTTP edges: the buffered functions' resolver helper and the streaming function's ASGI app."""
