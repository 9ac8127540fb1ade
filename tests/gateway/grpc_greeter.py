#!/usr/bin/env python3
"""An outside gRPC service for grpc_client_test: greeter.proto served by
Python's grpcio on 127.0.0.1 and a free port, which it prints on its first
line. Runs until its stdin closes (the test ends it by closing the pipe or
killing it).

usage: grpc_greeter.py <stub-dir>   (troupe_greeter_pb2*.py made by protoc there)
"""
import sys
import threading
from concurrent import futures

import grpc

sys.path.insert(0, sys.argv[1])
import greeter_pb2 as pb  # noqa: E402
import greeter_pb2_grpc as pb_grpc  # noqa: E402


class Greeter(pb_grpc.greeterServicer):
    def greet(self, request, context):
        lines = [f"hello {request.name} #{i + 1}" for i in range(request.times)]
        return pb.greet_reply(message=f"hello {request.name}", lines=lines)

    def count(self, request, context):
        return pb.count_reply(value=len(request.text))

    def refuse(self, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no greeting for {request.name}")

    def hang(self, request, context):
        cancelled = threading.Event()
        context.add_callback(cancelled.set)
        cancelled.wait(60)  # woken when the client's deadline cancels the call
        return pb.greet_reply()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
pb_grpc.add_greeterServicer_to_server(Greeter(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()  # until the test closes our stdin or kills us
server.stop(0)
