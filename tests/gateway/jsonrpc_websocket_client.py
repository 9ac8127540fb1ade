"""A JSON-RPC 2.0 client over WebSocket (Debian's python3-websockets), run by
tests/gateway/jsonrpc_websocket_test.cpp against the gateway's server.

    /usr/bin/python3 jsonrpc_websocket_client.py ws://127.0.0.1:PORT/jsonrpc MAX_MESSAGE_BYTES

Checks each answer itself; exits 0 and prints "ok <checks>" when all hold,
else exits 1 naming the first that failed. No sleeps: every wait is a
receive with a timeout.
"""
import asyncio
import json
import sys

import websockets

URL = sys.argv[1]
MAX_MESSAGE_BYTES = int(sys.argv[2])
checks = 0


def expect(what, got, want):
    global checks
    if got != want:
        print(f"FAILED {what}: got {got!r}, want {want!r}")
        sys.exit(1)
    checks += 1


def request(method, params, id_):
    message = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


async def receive(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=20))


async def main():
    async with websockets.connect(URL, max_size=None) as ws:
        # Out of order: the held call is answered only after a later one.
        await ws.send(request("bank.hold", ["a"], 1))
        await ws.send(request("bank.balance", ["nobody"], 2))
        expect("the later call answered first", await receive(ws), {"jsonrpc": "2.0", "id": 2, "result": 0})
        await ws.send(request("bank.release", None, 3))
        answers = {a["id"]: a for a in [await receive(ws), await receive(ws)]}
        expect("the held call, once released", answers[1]["result"], "released a")
        expect("the release", 3 in answers, True)

        # Many in flight at once, each answered under its own id.
        for i in range(10, 20):
            await ws.send(request("bank.balance", ["nobody"], i))
        ids = sorted([(await receive(ws))["id"] for _ in range(10)])
        expect("ten in flight", ids, list(range(10, 20)))

        # A batch answers its requests only; notifications alone get nothing.
        await ws.send(json.dumps([
            {"jsonrpc": "2.0", "method": "bank.deposit", "params": ["ws", 5]},
            json.loads(request("bank.balance", ["ws"], 4)),
        ]))
        batch = await receive(ws)
        expect("batch of one request and one notification", len(batch), 1)
        expect("batch reply id", batch[0]["id"], 4)
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "bank.deposit", "params": ["ws", 5]}))
        await ws.send(request("bank.balance", ["ws"], 5))
        expect("nothing for the notification", (await receive(ws))["id"], 5)

        # A binary frame and a frame that is not JSON: parse errors, and the connection stays up.
        await ws.send(b"\x00\x01binary")
        reply = await receive(ws)
        expect("binary frame", (reply["id"], reply["error"]["code"]), (None, -32700))
        await ws.send("hello, not JSON")
        expect("text that is not JSON", (await receive(ws))["error"]["code"], -32700)
        await ws.send(request("bank.balance", ["ws"], 6))
        expect("still up", (await receive(ws))["id"], 6)

        # A message over the limit: the server closes with 1009 (message too big).
        await ws.send(request("bank.balance", ["x" * (MAX_MESSAGE_BYTES + 1)], 7))
        try:
            await receive(ws)
            expect("closed after an oversized message", False, True)
        except websockets.exceptions.ConnectionClosed as closed:
            expect("close code", closed.rcvd.code if closed.rcvd else None, 1009)

    print(f"ok {checks}")


asyncio.run(main())
