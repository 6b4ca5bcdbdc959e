"""The stand-in's Cloud Map: private DNS namespaces and their services."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.aws_memory.common import ACCOUNT, REGION, AwsError, Held, one_page


@dataclass(kw_only=True)
class CloudMapMemory(Held):
    """Cloud Map's calls (`_servicediscovery_<Operation>`), answered from dicts under the
    caller's lock; every namespace is in the one made-up VPC."""

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_namespace(self, name: str) -> str:
        """A private DNS namespace (CreatePrivateDnsNamespace is an asynchronous operation in
        Cloud Map; the seeding adds its namespaces here directly); returns its id."""
        with self._lock:
            for namespace in self.namespaces.values():
                if namespace["Name"] == name:
                    return str(namespace["Id"])
            ns_id = self._next_id("ns-")
            self.namespaces[ns_id] = {
                "Id": ns_id,
                "Arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/{ns_id}",
                "Name": name,
                "Type": "DNS_PRIVATE",
                "Properties": {"DnsProperties": {"HostedZoneId": f"Z{ns_id[3:].upper()}"}},
                "CreateDate": time.time(),
                "ServiceCount": 0,
            }
            return ns_id

    def _servicediscovery_ListNamespaces(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        summaries = [dict(n) for n in self.namespaces.values()]
        page, token = one_page(summaries, r, "NextToken", "MaxResults", 100)
        return {"Namespaces": page, **({"NextToken": token} if token else {})}

    def _servicediscovery_GetNamespace(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        namespace = self.namespaces.get(str(r["Id"]))
        if namespace is None:
            raise AwsError(400, "NamespaceNotFound", f"Namespace {r['Id']} not found")
        return {"Namespace": namespace}

    def _servicediscovery_CreateService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        ns_id = str(r.get("NamespaceId") or "")
        if ns_id not in self.namespaces:
            raise AwsError(400, "NamespaceNotFound", f"Namespace {ns_id} not found")
        for service in self.registry.values():
            if service["NamespaceId"] == ns_id and service["Name"] == r["Name"]:
                if service.get("CreatorRequestId") == r.get("CreatorRequestId"):
                    return {"Service": service}  # a retried create
                raise AwsError(400, "ServiceAlreadyExists", "Service already exists")
        sid = self._next_id("srv-")
        service = {
            "Id": sid,
            "Arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:service/{sid}",
            "Name": r["Name"],
            "NamespaceId": ns_id,
            "Type": r.get("Type", "DNS_HTTP"),
            "CreateDate": time.time(),
            "CreatorRequestId": r.get("CreatorRequestId", ""),
            **{
                k: copy.deepcopy(r[k])
                for k in (
                    "Description",
                    "DnsConfig",
                    "HealthCheckConfig",
                    "HealthCheckCustomConfig",
                )
                if k in r
            },
        }
        if "DnsConfig" in service:
            service["DnsConfig"]["NamespaceId"] = ns_id
        self.registry[sid] = service
        return {"Service": service}

    def _servicediscovery_GetService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        service = self.registry.get(str(r["Id"]))
        if service is None:
            raise AwsError(400, "ServiceNotFound", f"Service {r['Id']} not found")
        return {"Service": service}

    def _servicediscovery_DeleteService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        if self.registry.pop(str(r["Id"]), None) is None:
            raise AwsError(400, "ServiceNotFound", f"Service {r['Id']} not found")
        return {}

    def _servicediscovery_ListServices(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted: set[str] | None = None
        for f in r.get("Filters") or []:
            if f.get("Name") == "NAMESPACE_ID":
                wanted = set(f.get("Values") or [])
        keys = ("Id", "Arn", "Name", "Type", "Description", "DnsConfig", "CreateDate")
        summaries = [
            {k: s[k] for k in keys if k in s}
            for s in self.registry.values()
            if wanted is None or s["NamespaceId"] in wanted
        ]
        page, token = one_page(summaries, r, "NextToken", "MaxResults", 100)
        return {"Services": page, **({"NextToken": token} if token else {})}
