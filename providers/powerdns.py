"""PowerDNS Authoritative HTTP API: one PATCH per plan, after a compare step.

The API has no conditional write (no ETag, no prerequisite), so compare-and-swap is
*re-read, compare, then write*: every rrset of the plan is read again just before the
PATCH and compared with its plan-time value (TTL included). What the API does guarantee
is that one PATCH is applied in one database transaction: all rrsets or none. A writer
that slips in between the re-read and the PATCH (milliseconds) is not detected; use the
RFC2136 path on the same server when that window matters (its prerequisites are checked
by the server itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import requests
import urllib3.exceptions

from core.credentials import ApiKey, Credentials
from core.errors import ConflictError, ProviderError
from core.limits import UNCOUNTED_TYPES
from core.models import RRsetChange
from core.records import RecordType, RRset, is_subdomain, normalize_name
from providers.dnswire import Unrepresentable, from_rdataset, rdatatype, to_rdata

_RETRY = "Re-run the request to plan against the current value."
_WHOLE_ZONE_FROM = 10  # from this many rrsets on, one GET of the zone beats one GET per rrset
_ERROR_TEXT_MAX = 300


@dataclass(frozen=True)
class _ApiRRset:
    """One rrset as the API returned it: enabled records' content in PowerDNS presentation form."""

    name: str
    rtype: str
    ttl: int
    contents: tuple[str, ...]


class PowerDnsApiPath:
    """Changes one zone through the PowerDNS HTTP API (``X-API-Key``)."""

    supported_types = frozenset(RecordType)
    reads_need_credentials = True  # the API wants the key even to read

    def __init__(
        self, name: str, api_url: str, zone: str, server_id: str = "localhost", timeout_seconds: float = 5.0
    ) -> None:
        self.name = name
        base = api_url.rstrip("/")
        self.api_url = base.removesuffix("/api/v1")
        self.zone = normalize_name(zone)
        self.server_id = server_id
        self.timeout_seconds = timeout_seconds
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"PowerDnsApiPath(name={self.name!r}, api_url={self.api_url!r}, zone={self.zone!r})"

    @property
    def _zone_url(self) -> str:
        server, zone = quote(self.server_id, safe=""), quote(self.zone, safe="")
        return f"{self.api_url}/api/v1/servers/{server}/zones/{zone}"

    # --- the port -------------------------------------------------------------------------

    def read(self, name: str, rtype: RecordType, credentials: Credentials | None = None) -> RRset | None:
        """What the API holds now (disabled records are not served, so they are left out)."""
        key = self._key(credentials)
        name = normalize_name(name)
        self._check_in_zone(name)
        return self._rrset(self._current(key, [(name, rtype)], in_apply=False).get((name, rtype.value)), name, rtype)

    def read_many(
        self, keys: Sequence[tuple[str, RecordType]], credentials: Credentials | None = None
    ) -> dict[tuple[str, RecordType], RRset | None]:
        """``read`` for many rrsets at once: from ten on, one GET of the zone instead of one GET each."""
        key = self._key(credentials)
        wanted = [(normalize_name(name), rtype) for name, rtype in keys]
        for name, _ in wanted:
            self._check_in_zone(name)
        current = self._current(key, wanted, in_apply=False)
        return {
            asked: self._rrset(current.get((name, rtype.value)), name, rtype)
            for asked, (name, rtype) in zip(keys, wanted, strict=True)
        }

    def count_rrsets(self, up_to: int, credentials: Credentials | None = None) -> int | None:
        """How many rrsets the zone holds (not its SOA; disabled ones are not served), from one GET of the zone."""
        held = self._get(self._key(credentials), {}, in_apply=False)
        return min(up_to, sum(1 for _, rtype in held if rtype not in UNCOUNTED_TYPES))

    def apply(self, changes: Sequence[RRsetChange], credentials: Credentials) -> None:
        if not changes:
            return
        key = self._key(credentials)
        for change in changes:
            self._check_in_zone(change.name)
            if change.rtype not in self.supported_types:
                raise ProviderError(f"Change path {self.name} cannot change {change.rtype} records.")
        current = self._current(key, [(normalize_name(c.name), c.rtype) for c in changes], in_apply=True)
        for change in changes:
            name = normalize_name(change.name)
            if self._rrset(current.get((name, change.rtype.value)), name, change.rtype) != change.before:
                raise ConflictError(
                    f"{name} {change.rtype} changed after the plan was made; nothing was applied.", hint=_RETRY
                )
        self._request("PATCH", key, in_apply=True, json={"rrsets": [_patch_entry(c) for c in changes]})

    # --- talking to the API -------------------------------------------------------------------

    def _current(
        self, key: ApiKey, wanted: Sequence[tuple[str, RecordType]], *, in_apply: bool
    ) -> dict[tuple[str, str], _ApiRRset]:
        """The wanted rrsets as the API holds them now, keyed by (name, type value); absent ones are missing."""
        if len(wanted) >= _WHOLE_ZONE_FROM:
            return self._get(key, {}, in_apply)
        found: dict[tuple[str, str], _ApiRRset] = {}
        for name, rtype in wanted:
            found.update(self._get(key, {"rrset_name": name, "rrset_type": rtype.value}, in_apply))
        return found

    def _get(self, key: ApiKey, params: dict[str, str], in_apply: bool) -> dict[tuple[str, str], _ApiRRset]:
        """GET the zone; PowerDNS 4.7.3 filters by ``rrset_name``/``rrset_type``, older ones may send it all."""
        response = self._request("GET", key, in_apply=in_apply, params=params)
        found: dict[tuple[str, str], _ApiRRset] = {}
        try:
            for item in response.json()["rrsets"]:
                contents = tuple(str(r["content"]) for r in item["records"] if not r.get("disabled"))
                if contents:
                    rrset = _ApiRRset(str(item["name"]).lower(), str(item["type"]).upper(), int(item["ttl"]), contents)
                    found[(rrset.name, rrset.rtype)] = rrset
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                f"PowerDNS API at {self.api_url} sent a zone breakglass could not read"
                + ("; nothing was applied." if in_apply else "."),
                hint="Check that api_url points at the PowerDNS webserver.",
            ) from None
        return found

    def _request(self, method: str, key: ApiKey, *, in_apply: bool, **kwargs: Any) -> requests.Response:
        """One API call; ``in_apply`` makes failures say whether anything was applied."""
        try:
            response = self._session.request(
                method,
                self._zone_url,
                headers={"X-API-Key": key.secret.reveal(), "Accept": "application/json"},
                timeout=self.timeout_seconds,
                **kwargs,
            )
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc, method, in_apply) from None
        if response.status_code >= 300:
            raise self._http_error(response, method, in_apply)
        return response

    # --- conversions and checks -----------------------------------------------------------------

    def _rrset(self, found: _ApiRRset | None, name: str, rtype: RecordType) -> RRset | None:
        if found is None:
            return None
        try:
            rdatas = [
                dns.rdata.from_text(dns.rdataclass.IN, rdatatype(rtype), c, origin=dns.name.root)
                for c in found.contents
            ]
            return from_rdataset(name, rtype, dns.rdataset.from_rdata_list(found.ttl, rdatas))
        except (dns.exception.DNSException, Unrepresentable) as exc:
            what = str(exc) if isinstance(exc, Unrepresentable) else "content breakglass cannot parse"
            raise ProviderError(
                f"{name} {rtype} in PowerDNS holds {what}, which breakglass cannot represent.",
                hint="Change this record with your usual DNS tooling.",
            ) from None

    def _key(self, credentials: Credentials | None) -> ApiKey:
        if not isinstance(credentials, ApiKey):
            got = "none" if credentials is None else type(credentials).__name__
            raise ProviderError(f"Change path {self.name} needs a PowerDNS API key (even to read), got {got}.")
        return credentials

    def _check_in_zone(self, name: str) -> None:
        if not is_subdomain(normalize_name(name), self.zone):
            raise ProviderError(f"{name} is outside zone {self.zone} served by change path {self.name}.")

    # --- errors ------------------------------------------------------------------------------------

    def _unreachable(self, exc: requests.exceptions.RequestException, method: str, in_apply: bool) -> ProviderError:
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return ProviderError(f"Change path {self.name}: `{self.api_url}` is not a usable API URL.")
        never_sent = _never_connected(exc)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            what = f"did not answer within {self.timeout_seconds:g}s"
        elif isinstance(exc, requests.exceptions.ConnectTimeout):
            what = f"could not be reached within {self.timeout_seconds:g}s"
        else:
            what = "is unreachable" + (" (connection refused)" if never_sent else "")
        if not in_apply:
            return ProviderError(
                f"PowerDNS API at {self.api_url} {what}.", hint="Check that the server is running and reachable."
            )
        if method == "GET" or never_sent:
            return ProviderError(
                f"PowerDNS API at {self.api_url} {what}; nothing was applied.",
                hint="Check that the server is running and reachable, then retry.",
            )
        return ProviderError(
            f"PowerDNS API at {self.api_url} {what}.",
            hint="The change may or may not have been applied: check the record before retrying.",
        )

    def _http_error(self, response: requests.Response, method: str, in_apply: bool) -> ProviderError:
        status = int(response.status_code)
        outcome = " Nothing was applied." if in_apply else ""
        if status in (401, 403):
            return ProviderError(
                f"PowerDNS API at {self.api_url} refused the API key (HTTP {status}).{outcome}",
                hint="Check the key in the credential source against the server's api-key and webserver-allow-from.",
            )
        if status == 404:
            return ProviderError(
                f"PowerDNS API at {self.api_url} has no zone {self.zone} on server `{self.server_id}`"
                f" (HTTP 404).{outcome}",
                hint=f"Check the zone and server_id of change path {self.name}.",
            )
        detail = _error_text(response)
        if 400 <= status < 500:
            return ProviderError(f"PowerDNS refused the request: {detail} (HTTP {status}).{outcome}")
        if method == "GET":
            return ProviderError(
                f"PowerDNS API at {self.api_url} failed (HTTP {status}: {detail}).{outcome}",
                hint="Check the server's logs.",
            )
        return ProviderError(
            f"PowerDNS API at {self.api_url} failed the change (HTTP {status}: {detail}).",
            hint="PowerDNS applies a PATCH in one transaction, so it was most likely not applied: "
            "check the record, then retry.",
        )


def _patch_entry(change: RRsetChange) -> dict[str, object]:
    """One rrset of the PATCH body: REPLACE with the new records, or DELETE."""
    name = normalize_name(change.name)
    if change.after is None:
        return {"name": name, "type": change.rtype.value, "changetype": "DELETE"}
    records = [{"content": to_rdata(change.rtype, v).to_text(), "disabled": False} for v in change.after.values]
    return {
        "name": name,
        "type": change.rtype.value,
        "ttl": change.after.ttl,
        "changetype": "REPLACE",
        "records": records,
    }


def _error_text(response: requests.Response) -> str:
    """PowerDNS's JSON ``error`` (it names the rrset and the reason), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = str(body["error"]) if isinstance(body, dict) and "error" in body else response.text.strip()
    return (text or response.reason or "no detail")[:_ERROR_TEXT_MAX]


def _never_connected(exc: requests.exceptions.RequestException) -> bool:
    """True when no TCP connection was made (refused, timed out), so nothing can have been sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)
