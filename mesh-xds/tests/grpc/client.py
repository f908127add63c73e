"""gRPC's proxyless xDS client for the interop test. Calls /echo.Echo/Who on the xds:/// target
given, as told on stdin, and prints the answers counted by backend as one JSON line per
command:

- "count N [USER]": N calls, with header x-user: USER when given;
- "settle N": calls until N answers in a row come from one backend (at most 5000 calls), and
  prints those N counted, with "calls" the number made. A sync Python client reads its xDS
  stream only while it has calls in flight, so a pushed change shows on the calls that
  follow it.

GRPC_XDS_BOOTSTRAP names the control plane."""
import json
import sys

import grpc


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    who = channel.unary_unary("/echo.Echo/Who")
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        n = int(parts[1])
        if parts[0] == "settle":
            last, run, calls = None, 0, 0
            while run < n and calls < 5000:
                answer = who(b"", timeout=10, wait_for_ready=True).decode()
                calls += 1
                run = run + 1 if answer == last else 1
                last = answer
            print(json.dumps({last: run, "calls": calls}), flush=True)
            continue
        metadata = [("x-user", parts[2])] if len(parts) > 2 else None
        counts = {}
        for _ in range(n):
            answer = who(b"", metadata=metadata, timeout=10, wait_for_ready=True).decode()
            counts[answer] = counts.get(answer, 0) + 1
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
