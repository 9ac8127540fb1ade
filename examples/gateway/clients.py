#!/usr/bin/env python3
"""The bank of examples/gateway called by programs that know nothing of troupe:
Python's urllib (JSON-RPC), xmlrpc.client (XML-RPC) and grpcio with stubs
generated from the .proto the gateway serves (gRPC). Starts the example with
--serve, calls it over each protocol, prints what comes back, and exits 0
when every answer is the expected one.

usage: /usr/bin/python3 examples/gateway/clients.py build/release/examples/gateway
(Debian's interpreter: scripts/deps installs python3-grpcio there.)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import xmlrpc.client

wrong = 0


def check(what, got, expected):
    global wrong
    print(f"{what} -> {got}")
    if got != expected:
        print(f"   expected {expected}")
        wrong += 1


def jsonrpc(url, method, params, id_=1):
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id_}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def main():
    program = sys.argv[1]
    work = tempfile.mkdtemp(prefix="troupe-gateway-demo-")
    server = subprocess.Popen([program, "--serve", work], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        addresses = {}
        for line in server.stdout:  # until "ready", with the addresses before it
            line = line.strip()
            if line == "ready":
                break
            kind, _, where = line.partition(" ")
            addresses[kind] = where
        print("the bank is served at:", ", ".join(f"{k} {v}" for k, v in addresses.items()))

        url = addresses["jsonrpc"]
        check("JSON-RPC (urllib) bank.deposit", jsonrpc(url, "bank.deposit", {"account": "ada", "cents": 300})["result"],
              None)
        check("JSON-RPC (urllib) bank.balance", jsonrpc(url, "bank.balance", ["ada"])["result"], 300)

        bank = xmlrpc.client.ServerProxy(addresses["xmlrpc"], allow_none=True)
        bank.bank.deposit("ada", 45)
        check("XML-RPC (xmlrpc.client) bank.balance", bank.bank.balance("ada"), 345)
        try:
            bank.bank.rob("ada")
        except xmlrpc.client.Fault as fault:
            check("XML-RPC (xmlrpc.client) bank.rob", fault.faultCode, -32601)

        if "grpc" in addresses:
            protoc = shutil.which("protoc")
            plugin = shutil.which("grpc_python_plugin")
            subprocess.run([protoc, f"-I{work}", f"--python_out={work}", f"--grpc_out={work}",
                            f"--plugin=protoc-gen-grpc={plugin}", os.path.join(work, "bank.proto")], check=True)
            sys.path.insert(0, work)
            import grpc
            import bank_pb2 as pb
            import bank_pb2_grpc as pb_grpc
            with grpc.insecure_channel(addresses["grpc"]) as channel:
                stub = pb_grpc.bankStub(channel)
                check("gRPC (grpcio) bank.balance", stub.balance(pb.balance(account="ada"), timeout=10).value, 345)
                entries = [f"{e.account}:{e.cents}" for e in stub.ledger(pb.ledger(), timeout=10)]
                check("gRPC (grpcio) bank.ledger, streamed", entries, ["ada:300", "ada:45"])
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print("every answer as expected" if wrong == 0 else f"{wrong} answers were wrong")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
