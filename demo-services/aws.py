"""The demo's AWS resources on moto: checkout's orders table (with a stream), the event topic, the queues."""

from __future__ import annotations

from typing import Any

import boto3
from corrtrace.demo.settings import Mesh


def client(mesh: Mesh, name: str) -> Any:
    """A plain boto3 client on the mesh's moto (the runner and the MDM check; services add propagation)."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=mesh.region
    )
    return session.client(name, endpoint_url=mesh.moto_url)


def create_resources(mesh: Mesh) -> None:
    """Create the table with ``NEW_AND_OLD_IMAGES`` stream, the topic, the aggregation queue, the DLQ and the
    manager's failure channel (a table with a stream, and its on-failure queue)."""
    ddb = client(mesh, "dynamodb")
    ddb.create_table(
        TableName=mesh.orders_table,
        KeySchema=[{"AttributeName": "correlation_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "correlation_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    sns, sqs = client(mesh, "sns"), client(mesh, "sqs")
    mesh.topic_arn = sns.create_topic(Name="demo-events")["TopicArn"]
    mesh.aggregation_queue_url = sqs.create_queue(QueueName="demo-aggregation")["QueueUrl"]
    mesh.shipping_dlq_url = sqs.create_queue(QueueName="demo-shipping-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=mesh.aggregation_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=mesh.topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    from corrtrace.demo.manager import manager_settings
    from corrtrace.txmanager.failures import create_resources as create_failure_channel

    create_failure_channel(manager_settings(mesh), lambda name: client(mesh, name))


def stream_arn(mesh: Mesh) -> str:
    table = client(mesh, "dynamodb").describe_table(TableName=mesh.orders_table)["Table"]
    return str(table["LatestStreamArn"])
