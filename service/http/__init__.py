"""The HTTP transport: the Litestar app, its routes, and the ASGI pieces of the request path."""
