"""mlp-serve: dynamic-batching inference for small PyTorch MLPs over HTTP and gRPC.

gRPC core reads its experiments once, when `grpc` is imported; this package is imported
before any of its modules imports `grpc`, so the I/O mode is chosen here.
"""

import os

# gRPC core's EventEngine reads and writes sockets on threads of its own: one more thread hop
# per call before a completion reaches the asyncio loop. With these two experiments off, the
# poller thread that feeds the loop does the I/O itself: perf_analyzer (iris, concurrency 16,
# the server on one core) answered about a quarter more calls per second. An operator's own
# GRPC_EXPERIMENTS is kept as it is.
GRPC_POLLING_IO = "-event_engine_listener,-event_engine_for_all_other_endpoints"
os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_POLLING_IO)
