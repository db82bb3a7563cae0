"""RFC2136 dynamic updates, TSIG-signed, with compare-and-swap prerequisites.

All changes of a plan go in ONE update message. Its prerequisites say that every
rrset still holds the values it had at plan time (or does not exist), so the server
applies all of it or nothing (RFC2136 section 3.2). Prerequisites compare values
only; RFC2136 cannot express "with this TTL".
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Generator, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from core.credentials import Credentials, TsigAlgorithm, TsigKey
from core.errors import ConflictError, ProviderError
from core.limits import UNCOUNTED_TYPES
from core.models import RRsetChange
from core.records import RecordType, RRset, is_subdomain, normalize_name
from core.verification import ServerAddress
from providers.dnswire import Unrepresentable, find_answer, from_rdataset, make_query, rdatatype, to_rdataset

_ALGORITHMS = {
    TsigAlgorithm.HMAC_SHA256.value: dns.tsig.HMAC_SHA256,
    TsigAlgorithm.HMAC_SHA384.value: dns.tsig.HMAC_SHA384,
    TsigAlgorithm.HMAC_SHA512.value: dns.tsig.HMAC_SHA512,
}
_CONFLICT_RCODES = (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN)
_RETRY = "Re-run the request to plan against the current value."
_TRANSFER_FROM = 100  # rrsets wanted: below this, one query each beats transferring the zone
_TRANSFER_BUDGET = 20  # records transferred per rrset wanted, before the transfer is given up


class _Key(dns.tsig.Key):
    """dnspython's Key prints its secret in repr(); this one never does (tracebacks show locals)."""

    def __repr__(self) -> str:
        return f"<TSIG key {self.name} {self.algorithm}>"


class Rfc2136Path:
    """Changes one zone on its primary server by signed dynamic update over TCP."""

    supported_types = frozenset(RecordType)
    reads_need_credentials = False  # reading is a plain DNS query

    def __init__(self, name: str, server: ServerAddress, zone: str, timeout_seconds: float = 5.0) -> None:
        self.name = name
        self.server = server
        self.zone = normalize_name(zone)
        self.timeout_seconds = timeout_seconds

    def read(self, name: str, rtype: RecordType, credentials: Credentials | None = None) -> RRset | None:
        """What the primary serves now. Plain DNS query: reading needs no key, so ``credentials`` is unused."""
        name = normalize_name(name)
        found = self._read_raw(name, rtype)
        if found is None:
            return None
        try:
            return from_rdataset(name, rtype, found)
        except Unrepresentable as exc:
            raise ProviderError(
                f"{name} {rtype} on {self.server} holds {exc}, which breakglass cannot represent.",
                hint="Change this record with your usual DNS tooling.",
            ) from None

    def read_many(
        self, keys: Sequence[tuple[str, RecordType]], credentials: Credentials | None = None
    ) -> dict[tuple[str, RecordType], RRset | None]:
        """``read`` for many rrsets, from one zone transfer (AXFR) when the primary allows breakglass one.

        Transferring a 1,000-record zone costs about as much as a hundred queries, so it is tried
        from ``_TRANSFER_FROM`` rrsets on, and given up once the zone turns out to be much larger
        than the request (``_TRANSFER_BUDGET`` records per rrset wanted). If the primary refuses
        the transfer, or gives up, the answer is empty and every rrset is read on its own. Names a
        query would answer differently from the zone data are left out too: names outside the
        zone, at or below a delegation or DNAME, and (when the zone has a wildcard) names the
        zone does not hold.
        """
        if len(keys) < _TRANSFER_FROM:
            return {}
        held = self._transfer(budget=_TRANSFER_BUDGET * len(keys))
        if held is None:
            return {}
        origin = dns.name.from_text(self.zone)
        owners = {owner for owner, _ in held}
        cuts = [
            owner.to_text().lower()
            for owner, rdtype in held
            if (rdtype == dns.rdatatype.NS and owner != origin) or rdtype == dns.rdatatype.DNAME
        ]
        wildcard = any(owner.labels[0] == b"*" for owner in owners)
        found: dict[tuple[str, RecordType], RRset | None] = {}
        for asked in keys:
            name, rtype = normalize_name(asked[0]), asked[1]
            owner = dns.name.from_text(name)
            if not is_subdomain(name, self.zone) or any(is_subdomain(name, cut) for cut in cuts):
                continue
            if wildcard and owner not in owners:
                continue
            rdataset = held.get((owner, rdatatype(rtype)))
            try:
                found[asked] = None if rdataset is None else from_rdataset(name, rtype, rdataset)
            except Unrepresentable as exc:
                raise ProviderError(
                    f"{name} {rtype} on {self.server} holds {exc}, which breakglass cannot represent.",
                    hint="Change this record with your usual DNS tooling.",
                ) from None
        return found

    def count_rrsets(self, up_to: int, credentials: Credentials | None = None) -> int | None:
        """How many rrsets the zone holds (not its SOA or DNSSEC data), from a zone transfer.

        Counting stops at ``up_to``, so a large zone is not transferred whole to check a small
        request. None if the primary hands no zone over. Like ``read``, it needs no key.
        """
        counted: set[tuple[dns.name.Name, int]] = set()
        try:
            with contextlib.closing(self._zone_messages()) as messages:
                for message in messages:
                    for rrset in message.answer:
                        if dns.rdatatype.to_text(rrset.rdtype) not in UNCOUNTED_TYPES:
                            counted.add((rrset.name, int(rrset.rdtype)))
                        if len(counted) >= up_to:
                            return up_to
        except (dns.exception.DNSException, OSError, EOFError, ValueError):
            return None
        return len(counted)

    def _zone_messages(self) -> Generator[dns.message.Message, None, None]:
        """The AXFR from the primary, message by message (unsigned, like every read)."""
        yield from dns.query.xfr(
            self.server.host, self.zone, port=self.server.port, timeout=self.timeout_seconds,
            lifetime=self.timeout_seconds, relativize=False,
        )  # fmt: skip

    def _transfer(self, budget: int) -> dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset] | None:
        """The zone's rrsets by AXFR from the primary; None if it hands none over or holds more than ``budget``."""
        held: dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset] = {}
        records = 0
        try:
            for message in self._zone_messages():
                for rrset in message.answer:
                    records += len(rrset)
                    if records > budget:
                        return None
                    key = (rrset.name, int(rrset.rdtype))
                    if key in held:  # an rrset split over messages, or the closing SOA
                        for rdata in rrset:
                            held[key].add(rdata, rrset.ttl)
                    else:
                        held[key] = rrset
        except (dns.exception.DNSException, OSError, EOFError, ValueError):
            return None
        return held

    def apply(self, changes: Sequence[RRsetChange], credentials: Credentials) -> None:
        if not changes:
            return
        if not isinstance(credentials, TsigKey):
            raise ProviderError(f"Change path {self.name} needs a TSIG key, got {type(credentials).__name__}.")
        key = self._key(credentials)
        update = dns.update.UpdateMessage(self.zone)
        for change in changes:
            self._check_in_zone(change.name)
            if change.before is None:
                update.absent(change.name, rdatatype(change.rtype))
            else:  # rdata without a TTL: prerequisites must carry TTL 0 (RFC2136 3.2.1)
                update.present(change.name, *self._prerequisite(change.name, change.rtype, change.before))
        for change in changes:
            if change.after is None:
                update.delete(change.name, rdatatype(change.rtype))
            else:
                update.replace(change.name, to_rdataset(change.after))
        update.use_tsig(key)
        response = self._send(update, credentials)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        if rcode in _CONFLICT_RCODES:
            raise self._conflict(changes)
        raise self._refused(rcode, credentials)

    # --- building the update -------------------------------------------------------------

    def _key(self, credentials: TsigKey) -> _Key:
        algorithm = _ALGORITHMS.get(str(credentials.algorithm))
        if algorithm is None:
            raise ProviderError(
                f"TSIG algorithm `{credentials.algorithm}` of key `{credentials.name}` is not accepted.",
                hint="Use hmac-sha256, hmac-sha384 or hmac-sha512 (hmac-md5 and hmac-sha1 are too weak).",
            )
        try:
            return _Key(credentials.name, credentials.secret.reveal(), algorithm)
        except (binascii.Error, ValueError, dns.exception.DNSException):
            raise ProviderError(
                f"TSIG key `{credentials.name}` is malformed (the secret must be base64).",
                hint="Check the key stored in the credential source.",
            ) from None

    def _check_in_zone(self, name: str) -> None:
        if not is_subdomain(normalize_name(name), self.zone):
            raise ProviderError(f"{name} is outside zone {self.zone} served by change path {self.name}.")

    def _prerequisite(self, name: str, rtype: RecordType, before: RRset) -> dns.rdataset.Rdataset:
        """The rdata the rrset must hold for the update to apply.

        TXT values are read back from the server: a TXT written elsewhere may be split into
        character-strings at other places than 255 bytes, which reads as the same text but
        would never match a prerequisite rebuilt from that text.
        """
        if rtype is not RecordType.TXT:
            return to_rdataset(before)
        current = self._read_raw(normalize_name(name), rtype)
        if current is None or self._canonical(name, rtype, current) != before.values:
            raise self._conflict_message(name, rtype)
        return current

    def _canonical(self, name: str, rtype: RecordType, rdataset: dns.rdataset.Rdataset) -> tuple[str, ...] | None:
        try:
            return from_rdataset(name, rtype, rdataset).values
        except Unrepresentable:
            return None

    # --- talking to the server -------------------------------------------------------------

    def _read_raw(self, name: str, rtype: RecordType) -> dns.rdataset.Rdataset | None:
        response = self._send(make_query(name, rtype), None)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise ProviderError(
                f"{self.server} answered {dns.rcode.to_text(rcode)} when asked for {name} {rtype}.",
                hint=f"Check that it is the primary for {self.zone} and allows queries from breakglass.",
            )
        if not response.flags & dns.flags.AA:
            delegation = self._delegation(response, name, rtype)
            if delegation is not None:
                return delegation
            raise ProviderError(
                f"{self.server} is not authoritative for {name}.",
                hint=f"Point change path {self.name} at the primary server of {self.zone}.",
            )
        return None if rcode == dns.rcode.NXDOMAIN else find_answer(response, name, rtype)

    def _delegation(self, response: dns.message.Message, name: str, rtype: RecordType) -> dns.rrset.RRset | None:
        """The NS rrset of a delegation inside the zone.

        The primary answers ``name NS`` at a delegation point with a referral (no AA), yet
        those NS records are this zone's own data, and the ones an update would change.
        """
        inside = name != self.zone and is_subdomain(name, self.zone)
        if rtype is not RecordType.NS or not inside or response.rcode() != dns.rcode.NOERROR:
            return None
        return response.get_rrset(response.authority, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.NS)

    def _send(self, message: dns.message.Message, credentials: TsigKey | None) -> dns.message.Message:
        updating = isinstance(message, dns.update.UpdateMessage)
        try:
            return dns.query.tcp(message, self.server.host, timeout=self.timeout_seconds, port=self.server.port)
        except dns.exception.Timeout:
            raise ProviderError(
                f"DNS server {self.server} did not answer within {self.timeout_seconds:g}s.",
                hint="The update may or may not have been applied: check the record before retrying."
                if updating
                else "Check that the server is running and reachable.",
            ) from None
        except ConnectionRefusedError:
            raise ProviderError(
                f"DNS server {self.server} is unreachable (connection refused)"
                + ("; nothing was applied." if updating else "."),
                hint="Check that the server is running and reachable, then retry.",
            ) from None
        except (OSError, EOFError) as exc:  # the message may have been sent before the connection broke
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "connection closed"
            raise ProviderError(
                f"DNS server {self.server} is unreachable ({reason}).",
                hint="The update may or may not have been applied: check the record before retrying."
                if updating
                else "Check that the server is running and reachable, then retry.",
            ) from None
        except ValueError:
            raise ProviderError(f"Change path {self.name}: `{self.server.host}` is not an IP address.") from None
        except dns.tsig.PeerBadKey:
            raise self._auth_refused(credentials, "does not know this TSIG key (BADKEY)") from None
        except dns.tsig.PeerBadSignature:
            raise self._auth_refused(
                credentials, "rejected the TSIG signature (BADSIG): the secret does not match"
            ) from None
        except dns.tsig.PeerBadTime:
            raise self._auth_refused(credentials, "rejected the TSIG time (BADTIME): check both clocks") from None
        except (dns.tsig.PeerError, dns.tsig.BadSignature, dns.tsig.BadKey, dns.message.UnknownTSIGKey):
            raise self._auth_refused(credentials, "refused the TSIG key") from None
        except dns.exception.TooBig:
            raise ProviderError(
                "This plan does not fit in one DNS update message (64 KiB); nothing was applied.",
                hint="Split the change into smaller requests.",
            ) from None
        except dns.exception.DNSException as exc:
            if credentials is not None and "TSIG" in str(exc):  # e.g. an unsigned REFUSED to a signed update
                raise self._auth_refused(credentials, "refused the TSIG key") from None
            raise ProviderError(
                f"DNS server {self.server} sent a response breakglass could not use ({type(exc).__name__}).",
                hint="Check the server's logs.",
            ) from None

    # --- errors ------------------------------------------------------------------------------

    def _auth_refused(self, credentials: TsigKey | None, what: str) -> ProviderError:
        key = f"TSIG key `{credentials.name}`" if credentials else "The TSIG key"
        return ProviderError(
            f"DNS server {self.server} {what}. {key} was refused and nothing was applied.",
            hint="Check that the key in the credential source matches the server's key and update-policy.",
        )

    def _refused(self, rcode: dns.rcode.Rcode, credentials: TsigKey) -> ProviderError:
        text = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.NOTAUTH:
            return ProviderError(
                f"DNS server {self.server} is not the primary for zone {self.zone} (NOTAUTH); nothing was applied.",
                hint=f"Point change path {self.name} at the primary of {self.zone}.",
            )
        if rcode == dns.rcode.REFUSED:
            return self._auth_refused(credentials, f"refused the update to {self.zone} (REFUSED)")
        if rcode == dns.rcode.NOTZONE:
            return ProviderError(f"A record in this plan is outside zone {self.zone} (NOTZONE); nothing was applied.")
        return ProviderError(
            f"DNS server {self.server} failed the update ({text}); nothing was applied.",
            hint="Check the server's logs, then retry.",
        )

    def _conflict(self, changes: Sequence[RRsetChange]) -> ConflictError:
        """Name the rrset that no longer matches its plan-time value (re-read to find it)."""
        for change in changes:
            try:
                current = self.read(change.name, change.rtype)
            except ProviderError:
                break
            if (current.values if current else None) != (change.before.values if change.before else None):
                return self._conflict_message(change.name, change.rtype)
        return ConflictError("A record in this plan changed after the plan was made; nothing was applied.", hint=_RETRY)

    @staticmethod
    def _conflict_message(name: str, rtype: RecordType) -> ConflictError:
        return ConflictError(f"{name} {rtype} changed after the plan was made; nothing was applied.", hint=_RETRY)
