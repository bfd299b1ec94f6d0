"""What one demo service process knows: its name, the mesh layout, the secret, its clients to peers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
from corrtrace.demo import wiring
from corrtrace.demo.settings import Mesh


class ManagerUnavailable(RuntimeError):
    """The manager could not be reached to register this service: nothing was changed, the caller gets 503."""


MANAGER_UNAVAILABLE = "manager-unavailable"  # a participant could not register: the request fails, is reported
UNAVAILABLE_BODY = {"error": MANAGER_UNAVAILABLE, "detail": "the transaction manager is unreachable; nothing changed"}


@dataclass
class Runtime:
    service: str
    mesh: Mesh
    secret: str = field(repr=False)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"demo.{self.service}")

    @cached_property
    def service_map(self) -> dict[str, str]:
        """``host:port`` -> service name, so outbound lines name the callee (the flow's edges)."""
        mapped = {f"127.0.0.1:{port}": name for name, port in self.mesh.ports.items()}
        mapped[self.mesh.moto_url.removeprefix("http://")] = "aws"
        return mapped

    @cached_property
    def http(self) -> httpx.Client:
        return wiring.http_client(self.service_map)

    def aws(self, name: str) -> Any:
        return wiring.boto3_client(name, self.mesh.moto_url, self.mesh.region, self.service_map)

    @cached_property
    def participant(self) -> Any:
        return wiring.participant_client(self.mesh.url("txmanager"), self.secret, self.service)

    @cached_property
    def manager(self) -> Any:
        return wiring.manager_client(self.mesh.url("txmanager"), self.secret)

    @cached_property
    def failures(self) -> Any:
        """The manager's failure channel: a report is stored in its table whether or not the manager is up."""
        from corrtrace.demo.manager import manager_settings

        return wiring.failure_channel(manager_settings(self.mesh), self.service, self.aws("dynamodb"))

    def register(self, correlation_id: str) -> None:
        """Tell the manager this service holds state for the request (before changing any)."""
        from corrtrace.txmanager import TxManagerError

        base = self.mesh.url(self.service)
        try:
            self.participant.register(
                correlation_id,
                f"{base}/corrtrace/rollback/{correlation_id}",
                f"{base}/corrtrace/commit/{correlation_id}",
            )
        except TxManagerError as exc:
            if exc.status is not None and exc.status < 500:
                raise
            self.log.warning(
                "cannot register with the transaction manager (%s); refusing the request",
                exc.status,
                extra={"event.action": "register", "event.outcome": "failure"},
            )
            raise ManagerUnavailable(str(exc)) from None

    def publish(self, kind: str, correlation_id: str, order_id: str, **extra: Any) -> None:
        """Push a business event to the pub/sub topic the aggregation service counts (talk: pub/sub)."""
        import orjson

        body = {"kind": kind, "order_id": order_id, "correlation_id": correlation_id, **extra}
        self.sns.publish(
            TopicArn=self.mesh.topic_arn,
            Message=orjson.dumps(body).decode(),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
        )

    @cached_property
    def sns(self) -> Any:
        return self.aws("sns")
