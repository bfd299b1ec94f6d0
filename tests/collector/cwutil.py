"""Reading back CloudWatch Logs (moto) and a throttling hook for the fault proxy."""

from __future__ import annotations

from typing import Any

import orjson

from tests.collector.faultproxy import FaultProxy


def all_messages(logs: Any) -> list[str]:
    """Every stored message of every group and stream, read with get_log_events paging."""
    out: list[str] = []
    for group in logs.describe_log_groups()["logGroups"]:
        name = group["logGroupName"]
        for stream in logs.describe_log_streams(logGroupName=name)["logStreams"]:
            kwargs: dict[str, Any] = {
                "logGroupName": name,
                "logStreamName": stream["logStreamName"],
                "startFromHead": True,
                "limit": 10_000,
            }
            while True:
                resp = logs.get_log_events(**kwargs)
                out += [e["message"] for e in resp["events"]]
                if not resp["events"] or resp.get("nextForwardToken") == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = resp["nextForwardToken"]
    return out


def throttle_puts(
    pattern: tuple[str, ...] = ("ThrottlingException", "ThrottlingException", "", "ServiceUnavailableException", ""),
):
    """A proxy hook: PutLogEvents calls answer the codes of ``pattern`` in turn ("" = forward to moto)."""

    def hook(proxy: FaultProxy, method: str, path: str, headers: dict[str, str], body: bytes):
        if not headers.get("X-Amz-Target", "").endswith("PutLogEvents"):
            return None
        n = proxy.state.get("puts", 0)
        proxy.state["puts"] = n + 1
        code = pattern[n % len(pattern)]
        if not code:
            return None
        proxy.state[code] = proxy.state.get(code, 0) + 1
        status = 503 if code == "ServiceUnavailableException" else 400
        return (
            status,
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "proxy"},
            orjson.dumps({"__type": code, "message": "Rate exceeded" if status == 400 else "Service unavailable"}),
        )

    return hook
