#!/usr/bin/env python3
"""A real gRPC client (grpcio) for grpc_test: calls the bank service that
troupe's gateway serves, through stubs generated from the gateway's own .proto,
and prints one line per call: `<name> OK <reply as text>` or
`<name> <STATUS_CODE> <details>`.

usage: grpc_client.py <port> <stub-dir>
"""
import sys

import grpc

port, stubs = sys.argv[1], sys.argv[2]
sys.path.insert(0, stubs)
import troupe_gateway_pb2 as pb  # noqa: E402
import troupe_gateway_pb2_grpc as pb_grpc  # noqa: E402


def run(name, fn):
    try:
        reply = fn()
        text = str(reply).replace("\n", " ").strip()
        print(f"{name} OK {text}".rstrip(), flush=True)
    except grpc.RpcError as e:
        print(f"{name} {e.code().name} {e.details()}", flush=True)


def stream(name, fn, show):
    got = []
    try:
        for item in fn():
            got.append(show(item))
        print(f"{name} OK {' '.join(got)}".rstrip(), flush=True)
    except grpc.RpcError as e:
        after = f" after {' '.join(got)}" if got else ""
        print(f"{name} {e.code().name} {e.details()}{after}", flush=True)


with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    bank = pb_grpc.bankStub(channel)
    run("deposit", lambda: bank.deposit(pb.deposit(account="alice", cents=250)))
    run("deposit2", lambda: bank.deposit(pb.deposit(account="alice", cents=100)))
    run("balance", lambda: bank.balance(pb.balance(account="alice")))
    run("statement", lambda: bank.get_statement(pb.get_statement(account="alice")))
    run("lookup_missing", lambda: bank.lookup(pb.lookup(account="nobody")))
    run("lookup_found", lambda: bank.lookup(pb.lookup(account="alice")))
    run("stall", lambda: bank.stall(pb.stall(), timeout=0.3))
    # Bytes that are not a protobuf message of the request type.
    raw = channel.unary_unary("/troupe.bank/balance")
    run("garbage", lambda: raw(b"\xff\xff\xff\xff"))
    unknown = channel.unary_unary("/troupe.bank/rob")
    run("unknown", lambda: unknown(b""))
    stream("history", lambda: bank.history(pb.history(account="alice")), lambda e: f"{e.what}:{e.cents}")
    stream("countdown", lambda: bank.countdown(pb.countdown(**{"from": 3})), lambda i: str(i.value))
    stream("forever", lambda: bank.forever(pb.forever(), timeout=0.3), lambda e: e.what)
    doomed = pb_grpc.doomedStub(channel)
    stream("one_then_crash", lambda: doomed.one_then_crash(pb.one_then_crash()), lambda e: f"{e.what}:{e.cents}")
    run("crash", lambda: bank.crash(pb.crash()))
    run("after_crash", lambda: bank.balance(pb.balance(account="alice")))
