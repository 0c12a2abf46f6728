"""Codecs: one per wire format. Each turns a body, its headers (as plain strings) and the
model's card into rows, and the model's outputs into the answer's bytes and headers. No
Litestar, no ASGI: the HTTP routes and a gRPC service call the same functions."""
