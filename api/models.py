"""The DataSync backend: agents, locations, tasks, executions and tags, with all their rules.

One method per operation, in snake_case, taking the validated request and returning the response
document (moto's "rich models, thin responses"). Rendering to the output shape happens in
`api.responses`, so documents may carry internal members (an agent's roots, an execution's job
state) that never reach the wire.

Execution status machine (the real `TaskExecutionStatus` enum)::

    QUEUED ──claim──▶ LAUNCHING ──▶ PREPARING ──▶ TRANSFERRING ──▶ VERIFYING ──▶ SUCCESS
       │                 │               │              │               │    └──▶ ERROR
       └──cancel──▶ ERROR└────────cancel──▶ CANCELLING ──(agent stops)──▶ ERROR

An execution starts LAUNCHING when its agent has nothing else to do, else QUEUED (FIFO per agent);
its agent claims it through the jobs protocol (`api.jobs`) and reports the phases.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from api import lifecycle
from api.auth import Credential, KeyRing, new_agent_credential
from api.config import ServerConfig
from api.credentials import AgentCredentials, CredentialedThings
from api.errors import InvalidRequestException
from api.listing import matches, page
from api.locations import local_path, location_uri
from api.scheduler import Scheduler, change_execution
from api.store import TERMINAL_STATUSES, Store
from contract.jobs import InvalidBytesPerSecond, check_bytes_per_second
from contract.paths import inside_roots
from engine import FilterRules, InvalidOptionsError, Options

__all__ = ["Backend", "ServerConfig"]  # ServerConfig: re-exported from api.config

Doc = dict[str, Any]
_PLATFORM_VERSION = "datasync-local-0.1.0"


def _hex17() -> str:
    return secrets.token_hex(9)[:17]


def _invalid(message: str, code: str | None = None) -> InvalidRequestException:
    return InvalidRequestException(message, code)


def _execution_not_found(arn: str) -> InvalidRequestException:
    return _invalid(f"Task execution {arn} is not found.", "ResourceNotFound")


def _options_error(exc: InvalidOptionsError) -> InvalidRequestException:
    return InvalidRequestException(str(exc), "InvalidOptions")


def _filters_key(includes: Any, excludes: Any) -> str:
    return json.dumps([includes or [], excludes or []], sort_keys=True)


class Backend:
    """DataSync operations over a `Store`. Runs on one event loop: one writer at a time."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        # Called with an agent's ARN when there is news for it (work queued, a cancel, a new
        # rate), so an agent in this process can ask now instead of at its next poll or report.
        # Remote agents hear the same news in the reply to their next report. Must not block.
        self.work_listeners: list[Callable[[str], None]] = []
        # activated agents' own credentials live in the store alone (api.credentials)
        self.credentials = AgentCredentials(store)
        self.credentialed_things = CredentialedThings(store)
        for agent in store.all("agent"):
            self._move_credentials(agent)
        self.scheduler = Scheduler(store, config, notify=self._notify, is_remote=self.is_remote)

    def _move_credentials(self, agent: Doc) -> None:
        """A data dir of an earlier release kept the secret inside the agent document: move it
        to the credentials records (idempotent), so no resource document carries a secret."""
        credentials = agent.pop("_Credentials", None)
        if credentials:
            self.credentials.add(
                agent["AgentArn"],
                Credential(credentials["AccessKeyId"], credentials["SecretAccessKey"]),
            )
            self.store.put("agent", agent["AgentArn"], agent["CreationTime"], agent)

    def keyring(self, operator: Mapping[str, str]) -> KeyRing:
        """The secrets the app checks signatures against, with who may call what."""
        return KeyRing(operator, self.credentials, self.credentialed_things)

    def _notify(self, agent_arn: str) -> None:
        for listener in self.work_listeners:
            listener(agent_arn)

    # helpers ----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.config.clock()

    def arn(self, resource: str) -> str:
        return f"arn:aws:datasync:{self.config.region}:{self.config.account_id}:{resource}"

    def _get(self, kind: str, arn: str, what: str) -> Doc:
        doc = self.store.get(kind, arn)
        if doc is None:
            raise _invalid(f"{what} {arn} is not found.", "ResourceNotFound")
        return doc

    def _execution(self, arn: str) -> Doc:
        doc = self.store.execution(arn)
        if doc is None:
            raise _execution_not_found(arn)
        return doc

    def is_remote(self, agent_arn: str) -> bool:
        """An activated (on-prem) agent: its own process, its own credentials."""
        return agent_arn.rsplit("/", 1)[1] in self.credentialed_things

    def agent_status(self, agent: Doc) -> str:
        return self.scheduler.agent_status(agent)

    def _tag(self, arn: str, tags: list[Doc] | None) -> None:
        if tags:
            self.store.set_tags(arn, {t["Key"]: t.get("Value", "") for t in tags})

    # agents -----------------------------------------------------------------------------------
    def register_agent(self, name: str, roots: list[str], meta_key: str | None = None) -> str:
        """Register (or refresh) an agent served by this process; returns its ARN."""
        arn = self.store.meta(meta_key) if meta_key else None
        doc = self.store.get("agent", arn) if arn else None
        now = self.now()
        if doc is None:
            arn = self.arn(f"agent/agent-{_hex17()}")
            doc = {"AgentArn": arn, "Name": name, "CreationTime": now}
        assert arn is not None
        doc.update(
            {
                "EndpointType": "PUBLIC",
                "Platform": {"Version": _PLATFORM_VERSION},
                "LastConnectionTime": now,
                "Roots": [str(r) for r in roots],
            }
        )
        self.store.put("agent", arn, doc["CreationTime"], doc)
        if meta_key:
            self.store.set_meta(meta_key, arn)
        return arn

    def touch_agent(self, agent_arn: str) -> None:
        doc = self.store.get("agent", agent_arn)
        granularity = min(2.0, self.config.agent_timeout / 4)
        if doc is not None and self.now() - doc.get("LastConnectionTime", 0.0) > granularity:
            doc["LastConnectionTime"] = self.now()
            self.store.put("agent", agent_arn, doc["CreationTime"], doc)

    def create_agent(self, p: Doc) -> Doc:
        """Approve a pending agent by the key it showed; it collects its credentials by polling."""
        key = p["ActivationKey"]
        pending = self.store.meta(f"activation:{key}")
        info = json.loads(pending) if pending else None
        if info is None:
            raise _invalid(
                f"Activation key {key} is not recognised: start an agent with "
                "`datasync-local agent --server URL` and use the key it shows.",
                "InvalidActivationKey",
            )
        if info.get("AgentArn"):
            raise _invalid(
                f"Activation key {key} was already used for agent {info['AgentArn']}.",
                "InvalidActivationKey",
            )
        if info.get("ExpiresAt", 0) < self.now():
            raise _invalid(
                f"Activation key {key} has expired (keys are valid for "
                f"{int(self.config.activation_ttl // 60)} minutes); restart the agent for a new "
                "one.",
                "ActivationKeyExpired",
            )
        now = self.now()
        arn = self.arn(f"agent/agent-{_hex17()}")
        credential = new_agent_credential()
        doc: Doc = {
            "AgentArn": arn,
            "Name": p.get("AgentName") or info.get("Name") or "",
            "CreationTime": now,
            "EndpointType": "PUBLIC",
            "Platform": {"Version": _PLATFORM_VERSION},
            "LastConnectionTime": now,
            "Roots": info.get("Roots", []),
            "Mounts": info.get("Mounts", []),
            "Hostname": info.get("Hostname", ""),
            "Concurrency": info.get("Concurrency", 1),
        }
        if not doc["Name"]:
            del doc["Name"]
        self.store.put("agent", arn, now, doc)
        self.credentials.add(arn, credential)
        self.store.set_meta(f"activation:{key}", json.dumps({**info, "AgentArn": arn}))
        self._tag(arn, p.get("Tags"))
        return {"AgentArn": arn}

    def describe_agent(self, p: Doc) -> Doc:
        doc = self._get("agent", p["AgentArn"], "Agent")
        return {**doc, "Status": self.agent_status(doc)}

    def list_agents(self, p: Doc) -> Doc:
        agents = [{**a, "Status": self.agent_status(a)} for a in self.store.all("agent")]
        items, token = page(agents, "AgentArn", p)
        return {"Agents": items, "NextToken": token}

    def update_agent(self, p: Doc) -> Doc:
        doc = self._get("agent", p["AgentArn"], "Agent")
        if "Name" in p:
            doc["Name"] = p["Name"]
        self.store.put("agent", doc["AgentArn"], doc["CreationTime"], doc)
        return {}

    def delete_agent(self, p: Doc) -> Doc:
        arn = p["AgentArn"]
        self._get("agent", arn, "Agent")
        users = [loc["LocationArn"] for loc in self.store.all("location") if arn in loc["_Agents"]]
        if users:
            raise _invalid(
                f"Agent {arn} is used by location {users[0]}; delete its locations first.",
                "ResourceInUse",
            )
        self.credentials.remove(arn)
        self.store.remove(arn)
        return {}

    # locations --------------------------------------------------------------------------------
    def _check_location(self, hostname: str, subdirectory: str, agent_arns: list[str]) -> None:
        for agent_arn in agent_arns:
            self._get("agent", agent_arn, "Agent")
        local = [a for a in agent_arns if not self.is_remote(a)]
        if not local:
            # on-prem agents resolve hosts, mounts and roots on their own machine, where the
            # paths are; they fail the execution with the path named if it is not allowed
            if not subdirectory.startswith("/"):
                raise _invalid(
                    f"Subdirectory {subdirectory!r} must be an absolute path.",
                    "InvalidSubdirectory",
                )
            return
        path = local_path(hostname, subdirectory)
        for agent_arn in local:
            agent = self._get("agent", agent_arn, "Agent")
            roots = agent.get("Roots", [])
            if inside_roots(path, roots) is None:
                raise _invalid(
                    f"Subdirectory {subdirectory} is outside the directories agent {agent_arn} "
                    f"serves ({', '.join(roots) or 'none'}), after resolving '..' and symlinks.",
                    "PathOutsideRoots",
                )

    def _create_location(self, kind: str, p: Doc, agent_arns: list[str], extra: Doc) -> Doc:
        self._check_location(p["ServerHostname"], p["Subdirectory"], agent_arns)
        arn = self.arn(f"location/loc-{_hex17()}")
        now = self.now()
        doc = {
            "LocationArn": arn,
            "LocationUri": location_uri(kind, p["ServerHostname"], p["Subdirectory"]),
            "LocationType": kind,
            "CreationTime": now,
            "ServerHostname": p["ServerHostname"],
            "Subdirectory": p["Subdirectory"],
            "_Agents": agent_arns,
            **extra,
        }
        self.store.put("location", arn, now, doc)
        self._tag(arn, p.get("Tags"))
        return {"LocationArn": arn}

    def create_location_nfs(self, p: Doc) -> Doc:
        agents = p["OnPremConfig"]["AgentArns"]
        extra = {"OnPremConfig": {"AgentArns": agents}}
        if "MountOptions" in p:
            extra["MountOptions"] = p["MountOptions"]
        return self._create_location("NFS", p, agents, extra)

    _SMB_KEEP = ("User", "Domain", "MountOptions", "AuthenticationType", "DnsIpAddresses")

    def create_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        extra = {k: p[k] for k in self._SMB_KEEP if k in p}
        return self._create_location(
            "SMB", p, p["AgentArns"], {"AgentArns": p["AgentArns"], **extra}
        )

    def _reject_smb_secrets(self, p: Doc) -> None:
        for name in ("CmkSecretConfig", "CustomSecretConfig", "KerberosKeytab", "KerberosKrb5Conf"):
            if p.get(name):
                raise _invalid(f"{name} is not supported by this server.", "UnsupportedFeature")

    def _location(self, arn: str, kind: str | None = None) -> Doc:
        doc = self._get("location", arn, "Location")
        if kind is not None and doc["LocationType"] != kind:
            raise _invalid(
                f"Location {arn} is a {doc['LocationType']} location, not {kind}.",
                "WrongLocationType",
            )
        return doc

    def describe_location_nfs(self, p: Doc) -> Doc:
        doc = self._location(p["LocationArn"], "NFS")
        return {"MountOptions": {"Version": "AUTOMATIC"}, **doc}

    def describe_location_smb(self, p: Doc) -> Doc:
        doc = self._location(p["LocationArn"], "SMB")
        return {"MountOptions": {"Version": "AUTOMATIC"}, "AuthenticationType": "NTLM", **doc}

    def _update_location(self, doc: Doc, p: Doc, agents_key: str | None) -> Doc:
        hostname: str = p.get("ServerHostname") or doc["ServerHostname"]
        subdirectory: str = p.get("Subdirectory") or doc["Subdirectory"]
        agents = doc["_Agents"]
        if agents_key == "OnPremConfig" and "OnPremConfig" in p:
            agents = p["OnPremConfig"]["AgentArns"]
            doc["OnPremConfig"] = {"AgentArns": agents}
        elif agents_key == "AgentArns" and "AgentArns" in p:
            agents = p["AgentArns"]
            doc["AgentArns"] = agents
        self._check_location(hostname, subdirectory, agents)
        doc.update(
            ServerHostname=hostname,
            Subdirectory=subdirectory,
            _Agents=agents,
            LocationUri=location_uri(doc["LocationType"], hostname, subdirectory),
        )
        return doc

    def update_location_nfs(self, p: Doc) -> Doc:
        doc = self._update_location(self._location(p["LocationArn"], "NFS"), p, "OnPremConfig")
        if "MountOptions" in p:
            doc["MountOptions"] = p["MountOptions"]
        self.store.put("location", doc["LocationArn"], doc["CreationTime"], doc)
        return {}

    def update_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        doc = self._update_location(self._location(p["LocationArn"], "SMB"), p, "AgentArns")
        doc.update({k: p[k] for k in self._SMB_KEEP if k in p})
        self.store.put("location", doc["LocationArn"], doc["CreationTime"], doc)
        return {}

    def list_locations(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(doc: Doc) -> Callable[[str], list[Any]]:
            return lambda name: {
                "LocationUri": [doc["LocationUri"]],
                "LocationType": [doc["LocationType"]],
                "CreationTime": [doc["CreationTime"]],
            }[name]

        found = [d for d in self.store.all("location") if matches(filters, attributes(d))]
        items, token = page(found, "LocationArn", p)
        return {"Locations": items, "NextToken": token}

    def delete_location(self, p: Doc) -> Doc:
        arn = p["LocationArn"]
        self._location(arn)
        for task in self.store.all("task"):
            if arn in (task["SourceLocationArn"], task["DestinationLocationArn"]):
                raise _invalid(
                    f"Location {arn} is used by task {task['TaskArn']}; delete the task first.",
                    "ResourceInUse",
                )
        self.store.remove(arn)
        return {}

    def unsupported_location(self, operation: str) -> InvalidRequestException:
        return _invalid(
            f"{operation}: this location type needs a cloud service and is not supported by this "
            "server; use CreateLocationNfs or CreateLocationSmb with ServerHostname=localhost.",
            "UnsupportedLocationType",
        )

    # tasks ------------------------------------------------------------------------------------
    def _task_options(self, raw: Doc | None, task_mode: str) -> Options:
        try:
            return Options.create(raw, task_mode=task_mode)
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None

    def _check_filters(self, includes: Any, excludes: Any) -> None:
        try:
            FilterRules.from_rules(includes or None, excludes or None)
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None

    def _reject_unsupported_task_members(self, p: Doc) -> None:
        for name in ("ManifestConfig", "TaskReportConfig"):
            if p.get(name):
                raise _invalid(
                    f"{name} needs Amazon S3 and is not supported by this server.",
                    "UnsupportedFeature",
                )
        if p.get("Schedule"):
            raise _invalid(
                "Schedule is not supported by this server yet; start executions with "
                "StartTaskExecution.",
                "UnsupportedFeature",
            )

    def create_task(self, p: Doc) -> Doc:
        source = self._location(p["SourceLocationArn"])
        destination = self._location(p["DestinationLocationArn"])
        common = [a for a in source["_Agents"] if a in destination["_Agents"]]
        if not common:  # the scheduler picks among these for each execution
            raise _invalid(
                "SourceLocationArn and DestinationLocationArn must be served by a common agent: "
                "this server moves data between directories of one agent's host.",
                "NoCommonAgent",
            )
        self._reject_unsupported_task_members(p)
        mode = p.get("TaskMode", "BASIC")
        options = self._task_options(p.get("Options"), mode)
        self._check_filters(p.get("Includes"), p.get("Excludes"))
        arn = self.arn(f"task/task-{_hex17()}")
        now = self.now()
        doc: Doc = {
            "TaskArn": arn,
            "Name": p.get("Name", ""),
            "SourceLocationArn": source["LocationArn"],
            "DestinationLocationArn": destination["LocationArn"],
            "Options": options.to_dict(),
            "Includes": p.get("Includes", []),
            "Excludes": p.get("Excludes", []),
            "TaskMode": mode,
            "CreationTime": now,
        }
        if "CloudWatchLogGroupArn" in p:
            doc["CloudWatchLogGroupArn"] = p["CloudWatchLogGroupArn"]
        if not doc["Name"]:
            del doc["Name"]
        self.store.put("task", arn, now, doc)
        self._tag(arn, p.get("Tags"))
        return {"TaskArn": arn}

    def task_status(self, task: Doc) -> str:
        return self.scheduler.task_status(task)

    def describe_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        return {**task, "Status": self.task_status(task)}

    def update_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        self._reject_unsupported_task_members(p)
        if "Options" in p:
            current = self._task_options(task["Options"], task["TaskMode"])
            try:
                task["Options"] = current.merged(p["Options"]).to_dict()
            except InvalidOptionsError as exc:
                raise _options_error(exc) from None
        includes = p.get("Includes", task["Includes"])
        excludes = p.get("Excludes", task["Excludes"])
        self._check_filters(includes, excludes)
        task.update(Includes=includes, Excludes=excludes)
        for name in ("Name", "CloudWatchLogGroupArn"):
            if name in p:
                task[name] = p[name]
        self.store.put("task", task["TaskArn"], task["CreationTime"], task)
        return {}

    def delete_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        if self.store.executions(task_arn=task["TaskArn"], active=True):
            raise _invalid(
                f"Task {task['TaskArn']} has an execution in progress; cancel it first.",
                "TaskExecutionInProgress",
            )
        self.store.remove_executions(task["TaskArn"])
        self.store.remove(task["TaskArn"])
        return {}

    def list_tasks(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(doc: Doc) -> Callable[[str], list[Any]]:
            return lambda name: {
                "LocationId": [doc["SourceLocationArn"], doc["DestinationLocationArn"]],
                "CreationTime": [doc["CreationTime"]],
            }[name]

        found = [t for t in self.store.all("task") if matches(filters, attributes(t))]
        items, token = page(found, "TaskArn", p)
        return {"Tasks": [{**t, "Status": self.task_status(t)} for t in items], "NextToken": token}

    # executions -------------------------------------------------------------------------------
    def start_task_execution(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        self._reject_unsupported_task_members(p)
        base = self._task_options(task["Options"], task["TaskMode"])
        try:
            options = base.merged(p.get("OverrideOptions"))
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None
        includes = p.get("Includes", task["Includes"])
        excludes = p.get("Excludes", task["Excludes"])
        self._check_filters(includes, excludes)
        key = _filters_key(includes, excludes)
        admission = self.scheduler.admit(task, options, key)
        agent_arn = admission.agent_arn
        source = self._location(task["SourceLocationArn"])
        destination = self._location(task["DestinationLocationArn"])
        arn = f"{task['TaskArn']}/execution/exec-{_hex17()}"
        doc = lifecycle.new_execution(
            arn=arn,
            task=task,
            agent_arn=agent_arn,
            options=options.to_dict(),
            includes=includes,
            excludes=excludes,
            filters_key=key,
            source=lifecycle.location_for_agent(source),
            destination=lifecycle.location_for_agent(destination),
            queued=admission.queued,
            now=self.now(),
        )
        self.store.add_execution(doc)
        self._tag(arn, p.get("Tags"))
        task["CurrentTaskExecutionArn"] = arn
        self.store.put("task", task["TaskArn"], task["CreationTime"], task)
        self._notify(agent_arn)
        return {"TaskExecutionArn": arn}

    def describe_task_execution(self, p: Doc) -> Mapping[str, Any]:
        view = self.store.execution_view(p["TaskExecutionArn"])
        if view is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        return lifecycle.describe(view)

    def list_task_executions(self, p: Doc) -> Doc:
        if "TaskArn" in p:
            self._get("task", p["TaskArn"], "Task")
        found = sorted(
            self.store.executions(task_arn=p.get("TaskArn")), key=lambda e: e["TaskExecutionArn"]
        )
        items, token = page(found, "TaskExecutionArn", p)
        return {"TaskExecutions": items, "NextToken": token}

    def cancel_task_execution(self, p: Doc) -> Doc:
        def cancel(doc: Doc) -> bool:
            if doc["Status"] in TERMINAL_STATUSES:
                raise _invalid(
                    f"Task execution {doc['TaskExecutionArn']} cannot be cancelled in its "
                    f"current status: {doc['Status']}.",
                    "InvalidExecutionStatus",
                )
            lifecycle.request_cancel(doc, self.now())
            return True

        changed = change_execution(self.store, p["TaskExecutionArn"], cancel)
        if changed is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        self._notify(changed[0]["AgentArn"])
        return {}

    def update_task_execution(self, p: Doc) -> Doc:
        changes = p["Options"]
        others = sorted(set(changes) - {"BytesPerSecond"})
        if others:
            raise _invalid(
                f"UpdateTaskExecution can change only Options.BytesPerSecond, not "
                f"{', '.join('Options.' + o for o in others)}.",
                "InvalidOptions",
            )
        if "BytesPerSecond" not in changes:
            raise _invalid("Options.BytesPerSecond is required.", "InvalidOptions")
        try:
            check_bytes_per_second(changes["BytesPerSecond"])
        except InvalidBytesPerSecond as exc:
            raise _invalid(str(exc), "InvalidOptions") from None

        def set_rate(doc: Doc) -> bool:
            try:
                options = Options(doc["Options"], doc["TaskMode"]).merged(changes)
            except InvalidOptionsError as exc:
                raise _options_error(exc) from None
            if doc["Status"] in TERMINAL_STATUSES or doc["Status"] == "CANCELLING":
                raise _invalid(
                    f"Task execution {doc['TaskExecutionArn']} is {doc['Status']}: only a queued "
                    "or running execution can be updated.",
                    "InvalidExecutionStatus",
                )
            doc["Options"] = options.to_dict()
            return True

        changed = change_execution(self.store, p["TaskExecutionArn"], set_rate)
        if changed is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        self._notify(changed[0]["AgentArn"])
        return {}

    # tags -------------------------------------------------------------------------------------
    def _taggable(self, arn: str) -> None:
        if "/execution/" in arn:
            self._execution(arn)
            return
        kind = arn.split(":")[-1].split("/")[0]
        if kind not in ("agent", "location", "task") or self.store.get(kind, arn) is None:
            raise _invalid(f"Resource {arn} is not found.", "ResourceNotFound")

    def tag_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        if len(set(self.store.tags(p["ResourceArn"])) | {t["Key"] for t in p["Tags"]}) > 50:
            raise _invalid("A resource can have at most 50 tags.", "TooManyTags")
        self._tag(p["ResourceArn"], p["Tags"])
        return {}

    def untag_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        self.store.remove_tags(p["ResourceArn"], p["Keys"])
        return {}

    def list_tags_for_resource(self, p: Doc) -> Doc:
        self._taggable(p["ResourceArn"])
        tags = [{"Key": k, "Value": v} for k, v in self.store.tags(p["ResourceArn"]).items()]
        items, token = page(tags, "Key", p)
        return {"Tags": items, "NextToken": token}

    # start-up ---------------------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve executions a previous process left unfinished (see `api.scheduler`)."""
        return self.scheduler.recover()
