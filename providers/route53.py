"""Amazon Route53: one change batch per plan, DELETE of the exact old rrset + CREATE of the new.

Compare-and-swap on real AWS comes from Route53 itself: a DELETE must match the rrset's
current TTL and values exactly and a CREATE fails when the rrset exists, and a change batch
is all or nothing. So a record changed after the plan makes the whole batch fail.

Before writing, every rrset is also read again and compared with its plan-time value. That
catches most conflicts with a clear message, and it is the *only* check an emulator gives:
moto accepts a CREATE over an existing rrset and does not compare a DELETE with the current
values. On moto, compare-and-swap is therefore re-read-before-write (a writer slipping in
between the re-read and the batch is not caught there); only real AWS closes that window.

boto3 is imported inside the methods: it costs tens of megabytes and most deployments of
the bot never use this path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from core.credentials import AwsCredentials, Credentials
from core.errors import BreakglassError, ConflictError, InvalidInput, ProviderError
from core.limits import UNCOUNTED_TYPES
from core.models import RRsetChange
from core.records import RecordType, RRset, is_subdomain, normalize_name

log = structlog.get_logger("breakglass.route53")

MAX_RECORDS_PER_BATCH = 1000  # ResourceRecord elements; Route53 counts each DELETE and CREATE record
MAX_VALUE_CHARS_PER_BATCH = 32_000  # characters of all Value elements in one request
_WHOLE_ZONE_FROM = 10  # from this many rrsets on, one listing of the zone beats one lookup per rrset
_TXT_STRING_MAX = 255
_RETRY = "Re-run the request to plan against the current value."
_RETRYABLE = ("Throttling", "ThrottlingException", "PriorRequestNotComplete")  # refused, so never applied
_ATTEMPTS = 3
_AUTH_CODES = (
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "AuthFailure",
    "IncompleteSignature",
)
_DENIED_CODES = ("AccessDenied", "AccessDeniedException")
_CONFLICT_HINTS = ("but it was not found", "but it already exists", "values provided do not match")


@dataclass(frozen=True)
class Route53Batch:
    """One submitted change batch: its Route53 change id, how many records it counted, its last status."""

    change_id: str
    records: int
    status: str  # INSYNC, or PENDING/UNKNOWN when the wait for INSYNC ended first


@dataclass(frozen=True)
class Route53ApplyReport:
    """What the last ``apply`` submitted. More than one batch means it was not applied atomically."""

    batches: tuple[Route53Batch, ...]

    @property
    def in_sync(self) -> bool:
        return all(b.status == "INSYNC" for b in self.batches)


@dataclass(frozen=True)
class _Current:
    """An rrset as Route53 holds it: values verbatim and in order, as a DELETE must repeat them."""

    name: str
    rtype: str
    ttl: int | None
    values: tuple[str, ...]
    special: str | None  # alias, routing policy...: what breakglass cannot represent


@dataclass(frozen=True)
class _Planned:
    """One RRsetChange as Route53 actions, with what it counts against the batch limits."""

    actions: tuple[dict[str, Any], ...]
    records: int
    chars: int


class Route53Path:
    """Changes one hosted zone through the Route53 API with temporary AWS credentials."""

    supported_types = frozenset(RecordType)
    reads_need_credentials = True  # the API wants signed requests even to read

    def __init__(
        self,
        name: str,
        zone: str,
        endpoint_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_changes: int = MAX_RECORDS_PER_BATCH,
        insync_timeout_seconds: float = 60,
        *,
        allow_multi_batch: bool = False,
        hosted_zone_id: str | None = None,
    ) -> None:
        if not 1 <= max_changes <= MAX_RECORDS_PER_BATCH:
            raise ValueError(f"max_changes must be between 1 and {MAX_RECORDS_PER_BATCH}")
        self.name = name
        self.zone = normalize_name(zone)
        self.endpoint_url = endpoint_url
        self.timeout_seconds = timeout_seconds
        self.max_changes = max_changes
        self.insync_timeout_seconds = insync_timeout_seconds
        self.allow_multi_batch = allow_multi_batch
        self.last_apply: Route53ApplyReport | None = None
        self._zone_id = _bare_zone_id(hosted_zone_id) if hosted_zone_id else None
        self._client_for: tuple[AwsCredentials, Any] | None = None

    def __repr__(self) -> str:
        return f"Route53Path(name={self.name!r}, zone={self.zone!r}, endpoint_url={self.endpoint_url!r})"

    # --- the port -------------------------------------------------------------------------

    def read(self, name: str, rtype: RecordType, credentials: Credentials | None = None) -> RRset | None:
        """What the hosted zone holds now; alias and routing-policy records are refused, not approximated."""
        creds = self._credentials(credentials)
        name = normalize_name(name)
        self._check_in_zone(name)
        client = self._client(creds)
        current = self._current(client, creds, [(name, rtype)], in_apply=False)
        return self._rrset(current.get((name, rtype.value)))

    def read_many(
        self, keys: Sequence[tuple[str, RecordType]], credentials: Credentials | None = None
    ) -> dict[tuple[str, RecordType], RRset | None]:
        """``read`` for many rrsets at once: from ten on, one listing of the zone instead of one call each."""
        creds = self._credentials(credentials)
        wanted = [(normalize_name(name), rtype) for name, rtype in keys]
        for name, _ in wanted:
            self._check_in_zone(name)
        current = self._current(self._client(creds), creds, wanted, in_apply=False)
        return {
            asked: self._rrset(current.get((name, rtype.value)))
            for asked, (name, rtype) in zip(keys, wanted, strict=True)
        }

    def count_rrsets(self, up_to: int, credentials: Credentials | None = None) -> int | None:
        """How many rrsets the hosted zone holds (not its SOA), listing only the pages it takes to reach ``up_to``."""
        creds = self._credentials(credentials)
        client = self._client(creds)
        self._ensure_zone_id(client, creds, in_apply=False)
        counted: set[tuple[str, str]] = set()  # weighted or latency records share a name and type: one rrset
        for page in self._pages(client, creds, in_apply=False):
            counted |= {(i["Name"], i["Type"]) for i in page["ResourceRecordSets"] if i["Type"] not in UNCOUNTED_TYPES}
            if len(counted) >= up_to:
                return up_to
        return len(counted)

    def apply(self, changes: Sequence[RRsetChange], credentials: Credentials) -> None:
        """Re-read and compare, then submit the batch(es) and wait for INSYNC; see ``last_apply``.

        When the wait for INSYNC ends first, the change is still committed (Route53 has
        accepted it): apply returns normally and ``last_apply`` says PENDING; verification on
        the authoritative servers decides when it is served.
        """
        self.last_apply = None
        if not changes:
            return
        creds = self._credentials(credentials)
        for change in changes:
            self._check_in_zone(change.name)
            if change.rtype not in self.supported_types:
                raise ProviderError(f"Change path {self.name} cannot change {change.rtype} records.")
        client = self._client(creds)
        wanted = [(normalize_name(c.name), c.rtype) for c in changes]
        current = self._current(client, creds, wanted, in_apply=True)
        planned = []
        for change, key in zip(changes, wanted, strict=True):
            found = current.get((key[0], key[1].value))
            if self._rrset(found, in_apply=True) != change.before:
                raise _conflict(key[0], key[1])
            planned.append(_plan(change, found))
        batches = self._batches(planned)
        self._submit(client, creds, batches)

    # --- batches ----------------------------------------------------------------------------

    def _batches(self, planned: list[_Planned]) -> list[list[_Planned]]:
        """Whole changes packed in order into batches within Route53's limits (never splitting a DELETE+CREATE)."""
        total = sum(p.records for p in planned)
        for p in planned:
            if p.records > self.max_changes or p.chars > MAX_VALUE_CHARS_PER_BATCH:
                raise ProviderError(
                    f"One rrset change in this plan needs {p.records} records ({p.chars} characters); Route53 accepts"
                    f" {self.max_changes} records and {MAX_VALUE_CHARS_PER_BATCH} characters per batch."
                    " Nothing was applied.",
                    hint="Change this rrset with fewer values per request.",
                )
        batches: list[list[_Planned]] = [[]]
        records = chars = 0
        for p in planned:
            if batches[-1] and (records + p.records > self.max_changes or chars + p.chars > MAX_VALUE_CHARS_PER_BATCH):
                batches.append([])
                records = chars = 0
            batches[-1].append(p)
            records += p.records
            chars += p.chars
        if len(batches) > 1 and not self.allow_multi_batch:
            raise ProviderError(
                f"This plan needs {total} record changes (an updated record counts twice: DELETE + CREATE);"
                f" Route53 accepts {self.max_changes} per batch (and {MAX_VALUE_CHARS_PER_BATCH} characters),"
                " so it cannot be applied atomically. Nothing was applied.",
                hint="Split the change into smaller requests, or enable allow_multi_batch on change path"
                f" {self.name} to apply it in {len(batches)} batches (not atomic).",
            )
        return batches

    def _submit(self, client: Any, creds: AwsCredentials, batches: list[list[_Planned]]) -> None:
        submitted: list[Route53Batch] = []
        for index, batch in enumerate(batches):
            actions = [action for p in batch for action in p.actions]
            try:
                response = self._call(
                    creds,
                    client.change_resource_record_sets,
                    in_apply=True,
                    HostedZoneId=self._zone_id,
                    ChangeBatch={"Comment": "breakglass", "Changes": actions},
                )
            except BreakglassError as error:
                if submitted:
                    self.last_apply = Route53ApplyReport(tuple(submitted))
                    raise _partial(error, submitted, len(batches)) from None
                raise
            info = response["ChangeInfo"]
            submitted.append(Route53Batch(str(info["Id"]), sum(p.records for p in batch), str(info["Status"])))
            if len(batches) > 1:
                log.info("route53.batch_submitted", path=self.name, batch=index + 1, of=len(batches), id=info["Id"])
        self.last_apply = Route53ApplyReport(tuple(self._wait_in_sync(client, creds, submitted)))

    def _wait_in_sync(self, client: Any, creds: AwsCredentials, batches: list[Route53Batch]) -> list[Route53Batch]:
        """Poll GetChange until every batch is INSYNC or the wait ends; never raises (the change is committed)."""
        deadline = time.monotonic() + self.insync_timeout_seconds
        interval = 0.5
        statuses = [b.status for b in batches]
        while True:
            for i, batch in enumerate(batches):
                if statuses[i] == "INSYNC":
                    continue
                try:
                    info = self._call(creds, client.get_change, Id=batch.change_id)
                    statuses[i] = str(info["ChangeInfo"]["Status"])
                except ProviderError as error:
                    log.warning("route53.get_change_failed", path=self.name, id=batch.change_id, error=error.message)
                    statuses[i] = "UNKNOWN"
            if all(s in ("INSYNC", "UNKNOWN") for s in statuses) or time.monotonic() >= deadline:
                break
            time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            interval = min(interval * 2, 5.0)
        done = [Route53Batch(b.change_id, b.records, s) for b, s in zip(batches, statuses, strict=True)]
        if any(s != "INSYNC" for s in statuses):
            log.warning("route53.not_in_sync", path=self.name, batches=[(b.change_id, b.status) for b in done])
        return done

    # --- reading ------------------------------------------------------------------------------

    def _current(
        self, client: Any, creds: AwsCredentials, wanted: Sequence[tuple[str, RecordType]], *, in_apply: bool
    ) -> dict[tuple[str, str], _Current]:
        """The wanted rrsets as Route53 holds them now, keyed by (name, type value); absent ones are missing."""
        self._ensure_zone_id(client, creds, in_apply)
        keys = {(name, rtype.value) for name, rtype in wanted}
        if len(wanted) >= _WHOLE_ZONE_FROM:
            items = [item for page in self._pages(client, creds, in_apply) for item in page["ResourceRecordSets"]]
            return _by_key(items, keys)
        found: dict[tuple[str, str], _Current] = {}
        for name, rtype in wanted:  # a lookup also returns the rrsets that sort after: keep only its own
            page = self._call(
                creds,
                client.list_resource_record_sets,
                in_apply=in_apply,
                HostedZoneId=self._zone_id,
                StartRecordName=name,
                StartRecordType=rtype.value,
                MaxItems="2",
            )
            found.update(_by_key(page["ResourceRecordSets"], {(name, rtype.value)}))
        return found

    def _pages(self, client: Any, creds: AwsCredentials, in_apply: bool) -> Iterator[dict[str, Any]]:
        """The hosted zone's listing, one page (up to 300 rrsets) at a time."""
        start: dict[str, str] = {}
        while True:
            page = self._call(
                creds,
                client.list_resource_record_sets,
                in_apply=in_apply,
                HostedZoneId=self._zone_id,
                MaxItems="300",
                **start,
            )
            yield page
            if not page.get("IsTruncated"):
                return
            start = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                start["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _rrset(self, found: _Current | None, in_apply: bool = False) -> RRset | None:
        if found is None:
            return None
        what = found.special
        if what is None:
            try:
                values = [_parse_txt(v) for v in found.values] if found.rtype == "TXT" else list(found.values)
                return RRset.build(found.name, RecordType(found.rtype), found.ttl or 0, values)
            except (InvalidInput, ValueError) as exc:
                what = exc.message if isinstance(exc, InvalidInput) else str(exc)
        raise ProviderError(
            f"{found.name} {found.rtype} in Route53 holds {what}, which breakglass cannot represent."
            + (" Nothing was applied." if in_apply else ""),
            hint="Change this record with your usual DNS tooling.",
        )

    def _ensure_zone_id(self, client: Any, creds: AwsCredentials, in_apply: bool) -> None:
        """Find the hosted zone by name once; two zones of that name (private and public) need ``hosted_zone_id``."""
        if self._zone_id is not None:
            return
        response = self._call(
            creds, client.list_hosted_zones_by_name, in_apply=in_apply, DNSName=self.zone, MaxItems="100"
        )
        zones = [z for z in response.get("HostedZones", []) if _api_name(str(z["Name"])) == self.zone]
        if not zones:
            raise ProviderError(
                f"No Route53 hosted zone named {self.zone} is visible to these credentials.",
                hint=f"Check the zone of change path {self.name} and the account the credentials belong to.",
            )
        if len(zones) > 1:
            kinds = ", ".join(
                f"{_bare_zone_id(str(z['Id']))} ({'private' if z.get('Config', {}).get('PrivateZone') else 'public'})"
                for z in zones
            )
            raise ProviderError(
                f"{len(zones)} Route53 hosted zones are named {self.zone}: {kinds}.",
                hint=f"Set hosted_zone_id on change path {self.name} to the one breakglass must change.",
            )
        self._zone_id = _bare_zone_id(str(zones[0]["Id"]))

    # --- AWS calls and their errors ---------------------------------------------------------------

    def _credentials(self, credentials: Credentials | None) -> AwsCredentials:
        if not isinstance(credentials, AwsCredentials):
            got = "none" if credentials is None else type(credentials).__name__
            raise ProviderError(f"Change path {self.name} needs AWS credentials (even to read), got {got}.")
        return credentials

    def _client(self, creds: AwsCredentials) -> Any:
        """A route53 client for exactly these credentials (never the environment's), reused while they last."""
        if self._client_for is not None and self._client_for[0] == creds:
            return self._client_for[1]
        import boto3.session
        import botocore.config

        session = boto3.session.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key.reveal(),
            aws_session_token=creds.session_token.reveal() if creds.session_token else None,
            region_name=creds.region,
        )
        config = botocore.config.Config(
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            retries={"total_max_attempts": 1},  # retried here, only when AWS says it refused the request
        )
        client = session.client("route53", endpoint_url=self.endpoint_url, config=config)
        self._client_for = (creds, client)
        return client

    def _call(
        self, creds: AwsCredentials, method: Callable[..., Any], *, in_apply: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """One boto3 client call, retrying throttling (refused, so safe), every failure mapped to a typed error."""
        import botocore.exceptions

        operation = _operation(method)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                result: dict[str, Any] = method(**kwargs)
                return result
            except botocore.exceptions.ClientError as exc:
                code, message = _error_of(exc.response)
                if code in _RETRYABLE and attempt < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise self._client_error(code, _scrub(message, creds), operation, in_apply) from None
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError):
                raise self._unreachable("is unreachable", in_apply, sent=False) from None
            except botocore.exceptions.ReadTimeoutError:
                sent = operation == "ChangeResourceRecordSets"
                raise self._unreachable(f"did not answer within {self.timeout_seconds:g}s", in_apply, sent) from None
            except botocore.exceptions.BotoCoreError as exc:
                sent = operation == "ChangeResourceRecordSets"
                raise self._unreachable(f"failed ({type(exc).__name__})", in_apply, sent) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _client_error(self, code: str, message: str, operation: str, in_apply: bool) -> BreakglassError:
        outcome = " Nothing was applied." if in_apply else ""
        if code == "InvalidChangeBatch" and any(hint in message for hint in _CONFLICT_HINTS):
            return ConflictError(
                f"Route53 refused the change because a record changed after the plan was made ({message})."
                " Nothing was applied.",
                hint=_RETRY,
            )
        if code in _AUTH_CODES:
            return ProviderError(
                f"AWS refused the credentials for {operation} ({code}).{outcome}",
                hint="Check the credential source: the keys may be wrong, expired or revoked.",
            )
        if code in _DENIED_CODES:
            return ProviderError(
                f"AWS denied route53:{operation} to these credentials ({code}).{outcome}",
                hint=f"Grant route53:{operation} on the hosted zone to the break-glass role (see docs/providers.md).",
            )
        if code == "NoSuchHostedZone":
            zone_id, self._zone_id = self._zone_id, None  # looked up again next time
            return ProviderError(
                f"Route53 has no hosted zone {zone_id or self.zone} for {self.zone} ({code}).{outcome}",
                hint=f"Check the zone (or hosted_zone_id) of change path {self.name}.",
            )
        detail = f"{code}: {message}" if message else code
        return ProviderError(f"Route53 refused {operation} ({detail}).{outcome}")

    def _unreachable(self, what: str, in_apply: bool, sent: bool) -> ProviderError:
        where = f"Route53 endpoint {self.endpoint_url or '(AWS default)'}"
        if not in_apply:
            return ProviderError(f"{where} {what}.", hint="Check network access to Route53, then retry.")
        if not sent:
            return ProviderError(f"{where} {what}; nothing was applied.", hint="Check network access, then retry.")
        return ProviderError(
            f"{where} {what}.",
            hint="The change may or may not have been applied: check the record before retrying.",
        )

    def _check_in_zone(self, name: str) -> None:
        if not is_subdomain(normalize_name(name), self.zone):
            raise ProviderError(f"{name} is outside zone {self.zone} served by change path {self.name}.")


# --- conversions ----------------------------------------------------------------------------------


def _plan(change: RRsetChange, found: _Current | None) -> _Planned:
    """DELETE the rrset exactly as Route53 holds it (values verbatim, same order), then CREATE the new one."""
    actions: list[dict[str, Any]] = []
    records = chars = 0
    if found is not None:
        old = [{"Value": v} for v in found.values]
        actions.append(
            {
                "Action": "DELETE",
                "ResourceRecordSet": {
                    "Name": found.name,
                    "Type": found.rtype,
                    "TTL": found.ttl,
                    "ResourceRecords": old,
                },
            }
        )
        records += len(old)
        chars += sum(len(v) for v in found.values)
    if change.after is not None:
        after = change.after
        new = [_txt_value(v) if after.rtype is RecordType.TXT else v for v in after.values]
        rrset = {
            "Name": after.name,
            "Type": after.rtype.value,
            "TTL": after.ttl,
            "ResourceRecords": [{"Value": v} for v in new],
        }
        actions.append({"Action": "CREATE", "ResourceRecordSet": rrset})
        records += len(new)
        chars += sum(len(v) for v in new)
    return _Planned(tuple(actions), records, chars)


def _by_key(items: list[dict[str, Any]], keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Current]:
    """The listed rrsets whose (name, type) is wanted; two sets with one key are a routing policy."""
    found: dict[tuple[str, str], _Current] = {}
    for item in items:
        rrset = _from_api(item)
        key = (rrset.name, rrset.rtype)
        if key in keys:
            found[key] = rrset if key not in found else _Current(*key, None, (), "several record sets")
    return found


def _from_api(item: dict[str, Any]) -> _Current:
    special = None
    if "AliasTarget" in item:
        special = "an alias record"
    elif "SetIdentifier" in item:
        special = "a routing-policy record set"
    elif "TTL" not in item:
        special = "a record set without TTL"
    values = tuple(str(r["Value"]) for r in item.get("ResourceRecords", []))
    ttl = int(item["TTL"]) if "TTL" in item else None
    return _Current(_api_name(str(item["Name"])), str(item["Type"]), ttl, values, special)


def _api_name(name: str) -> str:
    """Route53 returns names with octal escapes (``\\052`` for ``*``); breakglass compares them lower-case, absolute."""
    decoded = _unescape(name).decode(errors="replace").lower()
    return decoded if decoded.endswith(".") else decoded + "."


def _bare_zone_id(zone_id: str) -> str:
    return zone_id.rsplit("/", 1)[-1]


def _txt_value(text: str) -> str:
    """A TXT value as Route53 wants it: quoted 255-byte strings; quotes, backslashes and non-ASCII escaped (octal)."""
    data = text.encode()
    chunks = [data[i : i + _TXT_STRING_MAX] for i in range(0, len(data), _TXT_STRING_MAX)] or [b""]
    return " ".join('"' + "".join(_escape_byte(b) for b in chunk) + '"' for chunk in chunks)


def _escape_byte(byte: int) -> str:
    if byte in (ord('"'), ord("\\")):
        return "\\" + chr(byte)
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}"


def _parse_txt(value: str) -> str:
    """Route53 TXT presentation (quoted or bare strings, octal escapes) to the core's plain text."""
    strings: list[bytes] = []
    i = 0
    while i < len(value):
        if value[i].isspace():
            i += 1
            continue
        quoted = value[i] == '"'
        i += 1 if quoted else 0
        start = i
        while i < len(value) and (value[i] != '"' if quoted else not value[i].isspace()):
            i += 2 if value[i] == "\\" else 1
        strings.append(_unescape(value[start:i]))
        i += 1 if quoted else 0
    try:
        return b"".join(strings).decode()
    except UnicodeDecodeError:
        raise ValueError("a TXT value that is not UTF-8 text") from None


def _unescape(text: str) -> bytes:
    """Backslash escapes as Route53 writes them: ``\\ddd`` octal, else the escaped character itself."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        digits = text[i + 1 : i + 4]
        if char == "\\" and len(digits) == 3 and all(d in "01234567" for d in digits):
            out.append(int(digits, 8) & 0xFF)
            i += 4
        elif char == "\\" and i + 1 < len(text):
            out.extend(text[i + 1].encode())
            i += 2
        else:
            out.extend(char.encode())
            i += 1
    return bytes(out)


def _error_of(response: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of an AWS error; moto nests Route53 auth errors under ``Errors``, which botocore misses."""
    error = response.get("Error") or {}
    if not error.get("Code"):
        error = (response.get("Errors") or {}).get("Error") or error
    return str(error.get("Code") or "Unknown"), str(error.get("Message") or "")


def _scrub(text: str, creds: AwsCredentials) -> str:
    """Remove secret values from a message AWS sent back (a signature error may echo request parts)."""
    for secret in (creds.secret_access_key, creds.session_token):
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "***")
    return text[:300]


def _operation(method: Callable[..., Any]) -> str:
    """The AWS operation name of a boto3 client method (``list_resource_record_sets`` -> ListResourceRecordSets)."""
    return "".join(part.capitalize() for part in getattr(method, "__name__", "call").split("_"))


def _conflict(name: str, rtype: RecordType) -> ConflictError:
    return ConflictError(f"{name} {rtype} changed after the plan was made; nothing was applied.", hint=_RETRY)


def _partial(error: BreakglassError, submitted: list[Route53Batch], total: int) -> BreakglassError:
    """A later batch failed: say plainly that earlier batches are in the zone (multi-batch is not atomic)."""
    ids = ", ".join(b.change_id for b in submitted)
    message = (
        f"Route53 applied {len(submitted)} of {total} batches ({ids}) before batch {len(submitted) + 1} failed:"
        f" {error.message.replace(' Nothing was applied.', '').replace('; nothing was applied.', '.')}"
        " The zone is now partly changed."
    )
    hint = "Re-plan to see the current records, then finish or roll back the change."
    return ConflictError(message, hint=hint) if isinstance(error, ConflictError) else ProviderError(message, hint=hint)
