"""A JSON-RPC 2.0 client in Python's standard library (json + urllib), run by
tests/gateway/jsonrpc_http_test.cpp against the gateway's server.

    python3 jsonrpc_client.py http://127.0.0.1:PORT/jsonrpc

Checks each answer itself; exits 0 and prints "ok <checks>" when all hold,
else exits 1 naming the first that failed.
"""
import json
import sys
import urllib.error
import urllib.request

URL = sys.argv[1]
checks = 0


def post(payload, raw=None):
    data = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(URL, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def expect(what, got, want):
    global checks
    if got != want:
        print(f"FAILED {what}: got {got!r}, want {want!r}")
        sys.exit(1)
    checks += 1


def call(method, params, id_=1):
    message = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return post(message)


# A notification (no id): 204, no body; the deposit is made.
status, body = post({"jsonrpc": "2.0", "method": "bank.deposit", "params": {"account": "py", "cents": 250}})
expect("notification status", status, 204)
expect("notification body", body, None)

# Parameters by name and by position; ids of each type come back as sent.
for id_ in ["text", 42, 2.5, None]:
    status, body = call("bank.balance", {"account": "py"}, id_)
    expect(f"balance by name, id {id_!r}", (status, body), (200, {"jsonrpc": "2.0", "id": id_, "result": 250}))
status, body = call("bank.balance", ["py"], 3)
expect("balance by position", body["result"], 250)

# A batch: one reply per request (notifications get none), in any order.
status, body = post([
    {"jsonrpc": "2.0", "method": "bank.deposit", "params": ["py", 50]},
    {"jsonrpc": "2.0", "method": "bank.balance", "params": ["nobody"], "id": "a"},
    {"jsonrpc": "2.0", "method": "no.such", "id": "b"},
    {"foo": "boo"},
])
expect("batch status", status, 200)
by_id = {r["id"]: r for r in body}
expect("batch size", len(body), 3)
expect("batch result", by_id["a"]["result"], 0)
expect("batch unknown method", by_id["b"]["error"]["code"], -32601)
expect("batch invalid member", by_id[None]["error"]["code"], -32600)

# Errors of each kind.
expect("parse error", post(None, raw=b'{"jsonrpc": "2.0", "method"')[1]["error"]["code"], -32700)
expect("invalid params", call("bank.balance", {"acct": "py"})[1]["error"]["code"], -32602)
expect("wrong version", post({"jsonrpc": "1.0", "method": "bank.balance", "id": 9})[1]["error"]["code"], -32600)
status, body = call("bank.crash", None, "c")
expect("actor failure code", body["error"]["code"], -32603)
expect("actor failure reason", "the vault is on fire" in body["error"]["data"], True)

print(f"ok {checks}")
