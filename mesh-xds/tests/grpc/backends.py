"""gRPC backends for the interop test: one server per name given, each answering
/echo.Echo/Who with its name. Prints "NAME PORT" per server, then "ready"; stops when stdin
closes."""
import sys
from concurrent import futures

import grpc


def main():
    servers = []
    for name in sys.argv[1:]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(lambda req, ctx, name=name: name.encode())
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("echo.Echo", {"Who": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        print(f"{name} {port}", flush=True)
    print("ready", flush=True)
    sys.stdin.read()
    for s in servers:
        s.stop(0)


if __name__ == "__main__":
    main()
