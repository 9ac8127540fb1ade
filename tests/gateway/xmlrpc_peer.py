#!/usr/bin/env python3
"""Python's own XML-RPC implementation (xmlrpc.client) on the other side of
the gateway's XML-RPC codec in tests/gateway/xmlrpc_test.cpp.

  xmlrpc_peer.py call METHOD PARAMS   prints the methodCall xmlrpc.client.dumps
                                      writes; PARAMS is a Python literal tuple in
                                      which D('...') is a DateTime, B(b'...') Binary
  xmlrpc_peer.py loads                reads a methodResponse on stdin, prints what
                                      xmlrpc.client.loads makes of it as JSON:
                                      {"result": ...} or {"fault": [code, string]},
                                      a DateTime as "dt:<value>", Binary as
                                      "b64:<base64>"
  xmlrpc_peer.py proxy URL            reads "METHOD<tab>PARAMS" lines on stdin and
                                      calls each through one xmlrpc.client.ServerProxy
                                      (one HTTP/1.1 connection), printing one JSON
                                      line per call as `loads` does
"""
import base64
import json
import sys
import xmlrpc.client


def D(text):
    return xmlrpc.client.DateTime(text)


def B(data):
    return xmlrpc.client.Binary(data)


def plain(value):
    if isinstance(value, xmlrpc.client.DateTime):
        return "dt:" + value.value
    if isinstance(value, xmlrpc.client.Binary):
        return "b64:" + base64.b64encode(value.data).decode()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main():
    if sys.argv[1] == "call":
        params = eval(sys.argv[3], {"D": D, "B": B})  # the test's own literal
        sys.stdout.write(xmlrpc.client.dumps(params, sys.argv[2], allow_none=True))
    elif sys.argv[1] == "proxy":
        proxy = xmlrpc.client.ServerProxy(sys.argv[2], allow_none=True)
        for line in sys.stdin:
            method, params = line.rstrip("\n").split("\t")
            try:
                result = getattr(proxy, method)(*eval(params, {"D": D, "B": B}))
                print(json.dumps({"result": plain(result)}, sort_keys=True))
            except xmlrpc.client.Fault as fault:
                print(json.dumps({"fault": [fault.faultCode, fault.faultString]}))
            except xmlrpc.client.ProtocolError as error:
                print(json.dumps({"http_error": [error.errcode, error.errmsg]}))
    elif sys.argv[1] == "loads":
        document = sys.stdin.buffer.read()
        try:
            params, _ = xmlrpc.client.loads(document)
            print(json.dumps({"result": plain(params[0])}, sort_keys=True))
        except xmlrpc.client.Fault as fault:
            print(json.dumps({"fault": [fault.faultCode, fault.faultString]}))
    else:
        sys.exit("unknown command " + sys.argv[1])


if __name__ == "__main__":
    main()
