"""Print N distinct free TCP ports on 127.0.0.1 (all bound at once, so none repeats), for the scripts that
start their own services: test.sh, bench.sh, load.sh, faults.sh."""

import socket
import sys

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
sockets = [socket.socket() for _ in range(count)]
for sock in sockets:
    sock.bind(("127.0.0.1", 0))
print(*[sock.getsockname()[1] for sock in sockets])
for sock in sockets:
    sock.close()
