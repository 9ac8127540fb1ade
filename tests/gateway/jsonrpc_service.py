"""A small JSON-RPC 2.0 service on Python's http.server, started by
tests/gateway/jsonrpc_client_test.cpp to be called by troupe's jsonrpc_client.

    /usr/bin/python3 jsonrpc_service.py     # prints its port, then serves until killed

Methods: add(a, b) -> a + b; greet({"name": n}) -> "hello " + n; fail() -> error
-32000; wrong_id() answers with another id; garbage() answers text that is not
JSON; hang() never answers (until the client gives up and closes).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

never = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, params, id_ = request["method"], request.get("params"), request["id"]
        if request.get("jsonrpc") != "2.0":
            return self.answer({"jsonrpc": "2.0", "id": id_, "error": {"code": -32600, "message": "Invalid Request"}})
        if method == "add":
            return self.answer({"jsonrpc": "2.0", "id": id_, "result": params[0] + params[1]})
        if method == "greet":
            return self.answer({"jsonrpc": "2.0", "id": id_, "result": "hello " + params["name"]})
        if method == "fail":
            return self.answer({"jsonrpc": "2.0", "id": id_,
                                "error": {"code": -32000, "message": "nope", "data": "as asked"}})
        if method == "wrong_id":
            return self.answer({"jsonrpc": "2.0", "id": id_ + 1000, "result": 1})
        if method == "garbage":
            return self.answer("this is not JSON")
        if method == "hang":
            never.wait()
        self.answer({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": "Method not found"}})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
