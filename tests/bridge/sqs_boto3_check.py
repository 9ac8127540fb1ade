#!/usr/bin/python3
"""boto3 (Debian 12's python3-boto3, botocore 1.29: the SQS query protocol)
against troupe's SQS endpoint: sends N messages in batches, receives them with
long polls, deletes them in batches, and checks the exact counts, the MD5s
botocore hands back (computed here independently, AWS's algorithm for message
attributes), and a redrive to a dead-letter queue.

    sqs_boto3_check.py http://127.0.0.1:PORT N

Prints "ok: sent N, received N, deleted N, dead-lettered 1" and exits 0, or
fails with an assertion. Run by tests/bridge/sqs_endpoint_test.cpp.
"""
import hashlib
import json
import struct
import sys

import boto3
from botocore.config import Config


def attributes_md5(attributes):
    def encoded(b):
        return struct.pack(">I", len(b)) + b

    buf = b""
    for name in sorted(attributes):
        a = attributes[name]
        kind = a["DataType"]
        buf += encoded(name.encode()) + encoded(kind.encode())
        if kind.startswith("Binary"):
            buf += b"\x02" + encoded(a["BinaryValue"])
        else:
            buf += b"\x01" + encoded(a["StringValue"].encode())
    return hashlib.md5(buf).hexdigest()


def main():
    url, n = sys.argv[1], int(sys.argv[2])
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1",
                       config=Config(retries={"max_attempts": 1}, read_timeout=60))
    q = sqs.create_queue(QueueName="boto-work")["QueueUrl"]
    assert sqs.get_queue_url(QueueName="boto-work")["QueueUrl"] == q

    attributes = {"seq": {"DataType": "Number", "StringValue": "0"},
                  "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"}}
    sent = set()
    for start in range(0, n, 10):
        entries = []
        for i in range(start, min(n, start + 10)):
            attributes["seq"]["StringValue"] = str(i)
            entries.append({"Id": "e%d" % i, "MessageBody": "message %d ünïcode" % i,
                            "MessageAttributes": json.loads(json.dumps(
                                {k: v for k, v in attributes.items() if k == "seq"}))})
        got = sqs.send_message_batch(QueueUrl=q, Entries=entries)
        assert not got.get("Failed"), got
        assert len(got["Successful"]) == len(entries), got
        for e, entry in zip(sorted(got["Successful"], key=lambda e: int(e["Id"][1:])), entries):
            assert e["MD5OfMessageBody"] == hashlib.md5(entry["MessageBody"].encode()).hexdigest(), e
            assert e["MD5OfMessageAttributes"] == attributes_md5(entry["MessageAttributes"]), e
            sent.add(e["MessageId"])
    assert len(sent) == n, len(sent)
    one = sqs.send_message(QueueUrl=q, MessageBody="with binary", MessageAttributes=attributes)
    assert one["MD5OfMessageAttributes"] == attributes_md5(attributes), one
    sent.add(one["MessageId"])

    received, deleted, bodies = set(), 0, set()
    while len(received) < n + 1:
        got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=2,
                                  AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        assert messages, "a long poll came back empty with %d of %d received" % (len(received), n + 1)
        for m in messages:
            assert m["MessageId"] not in received, "received twice: " + m["MessageId"]
            received.add(m["MessageId"])
            assert m["MD5OfBody"] == hashlib.md5(m["Body"].encode()).hexdigest()
            assert m["MD5OfMessageAttributes"] == attributes_md5(m["MessageAttributes"]), m
            assert m["Attributes"]["ApproximateReceiveCount"] == "1"
            bodies.add(m["Body"])
        entries = [{"Id": "d%d" % i, "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        got = sqs.delete_message_batch(QueueUrl=q, Entries=entries)
        assert not got.get("Failed"), got
        deleted += len(got["Successful"])
    assert received == sent
    assert "with binary" in bodies and "message 0 ünïcode" in bodies
    # Nothing left: an empty long poll, and the counts say so.
    assert not sqs.receive_message(QueueUrl=q, WaitTimeSeconds=1).get("Messages")
    counts = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "0", counts
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0", counts

    # Redrive: received twice without a delete, the third receive moves it to the DLQ.
    dlq = sqs.create_queue(QueueName="boto-dead")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = sqs.create_queue(QueueName="boto-src", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"}),
        "VisibilityTimeout": "0"})["QueueUrl"]
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for _ in range(2):
        assert len(sqs.receive_message(QueueUrl=src, WaitTimeSeconds=2).get("Messages", [])) == 1
    assert not sqs.receive_message(QueueUrl=src, WaitTimeSeconds=1).get("Messages")
    dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in dead] == ["poison"], dead

    # Errors arrive as botocore's modeled exceptions.
    try:
        sqs.get_queue_url(QueueName="no-such-queue")
        raise AssertionError("no error for a missing queue")
    except sqs.exceptions.QueueDoesNotExist:
        pass
    try:
        sqs.send_message_batch(QueueUrl=q, Entries=[{"Id": "x", "MessageBody": "a"}, {"Id": "x", "MessageBody": "b"}])
        raise AssertionError("no error for repeated ids")
    except sqs.exceptions.BatchEntryIdsNotDistinct:
        pass
    queues = sqs.list_queues(QueueNamePrefix="boto-")["QueueUrls"]
    assert sorted(queues) == sorted([q, dlq, src]), queues
    sqs.delete_queue(QueueUrl=src)
    assert sorted(sqs.list_queues(QueueNamePrefix="boto-")["QueueUrls"]) == sorted([q, dlq])
    print("ok: sent %d, received %d, deleted %d, dead-lettered %d" % (n, len(received) - 1, deleted - 1, len(dead)))


if __name__ == "__main__":
    main()
