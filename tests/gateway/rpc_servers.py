#!/usr/bin/env python3
"""Outside RPC services for tests/gateway/rpc_client_test.cpp, each on
127.0.0.1 and a port the kernel picks; the first line on stdout is
"port <n>". They run until killed.

  rpc_servers.py xmlrpc    xmlrpc.server.SimpleXMLRPCServer: add, echo, fail (a Fault)
  rpc_servers.py jsonrpc   JSON-RPC 2.0 over http.server (HTTP/1.1, keep-alive): add
                           (by position or name), echo, fail (an error object),
                           wrong_id, not_jsonrpc, http_error, close_after (closes
                           the kept connection after answering), connections
  rpc_servers.py silent    accepts, reads, prints "received", never answers
"""
import json
import socket
import sys
import threading
import xmlrpc.client
import xmlrpc.server
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def announce(port):
    print("port %d" % port, flush=True)


def serve_xmlrpc():
    server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)

    def fail():
        raise xmlrpc.client.Fault(42, "no such luck")

    server.register_function(lambda a, b: a + b, "add")
    server.register_function(lambda x: x, "echo")
    server.register_function(fail, "fail")
    announce(server.server_address[1])
    server.serve_forever()


connections = 0
connections_lock = threading.Lock()


class JsonRpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with connections_lock:
            connections += 1
        super().setup()

    def log_message(self, *args):
        pass

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, params, rid = request["method"], request.get("params", []), request["id"]
        reply = {"jsonrpc": "2.0", "id": rid}
        if request.get("jsonrpc") != "2.0":
            reply["error"] = {"code": -32600, "message": "not JSON-RPC 2.0"}
        elif method == "add":
            reply["result"] = params["a"] + params["b"] if isinstance(params, dict) else params[0] + params[1]
        elif method == "echo":
            reply["result"] = params[0]
        elif method == "fail":
            reply["error"] = {"code": -32001, "message": "no such luck", "data": {"why": "testing"}}
        elif method == "wrong_id":
            reply["id"] = rid + 1
            reply["result"] = 1
        elif method == "not_jsonrpc":
            del reply["jsonrpc"]
            reply["result"] = 1
        elif method == "http_error":
            return self.answer(500, {"oops": True})
        elif method == "close_after":
            # Answers as if the connection stayed open (no "Connection: close"), then closes it.
            self.close_connection = True
            reply["result"] = "closing"
        elif method == "connections":
            with connections_lock:
                reply["result"] = connections
        else:
            reply["error"] = {"code": -32601, "message": "method not found"}
        self.answer(200, reply)


def serve_jsonrpc():
    server = ThreadingHTTPServer(("127.0.0.1", 0), JsonRpcHandler)
    announce(server.server_address[1])
    server.serve_forever()


def serve_silent():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    announce(listener.getsockname()[1])
    held = []
    while True:
        connection, _ = listener.accept()
        connection.recv(65536)
        print("received", flush=True)
        held.append(connection)  # open, unanswered


if __name__ == "__main__":
    {"xmlrpc": serve_xmlrpc, "jsonrpc": serve_jsonrpc, "silent": serve_silent}[sys.argv[1]]()
