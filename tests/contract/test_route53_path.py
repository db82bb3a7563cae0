"""Route53Path beyond the shared contract, on moto: batch limits, hosted-zone lookup, value encoding.

moto's fidelity gaps are pinned here as tests of moto itself, so that the day moto closes
one of them these tests fail and docs/providers.md can be corrected.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from core.errors import ConflictError, ProviderError
from core.models import RRsetChange
from core.records import RecordType, RRset
from providers.route53 import Route53Path
from sandbox.moto import MotoServer
from tests.fixtures.moto import MOTO_CREDENTIALS, make_hosted_zone, moto_client

A, TXT = RecordType.A, RecordType.TXT


def rr(name: str, rtype: RecordType, ttl: int, *values: str) -> RRset:
    return RRset.build(name, rtype, ttl, list(values))


def creates(zone: str, count: int, prefix: str = "h") -> list[RRsetChange]:
    return [
        RRsetChange(f"{prefix}{i}.{zone}", A, None, rr(f"{prefix}{i}.{zone}", A, 60, "192.0.2.1")) for i in range(count)
    ]


def path(moto: MotoServer, zone: str, **options: object) -> Route53Path:
    return Route53Path("route53", zone, endpoint_url=moto.endpoint_url, **options)  # type: ignore[arg-type]


# --- batch limits -----------------------------------------------------------------------------


def test_a_plan_over_the_batch_limit_is_refused_whole(moto: MotoServer) -> None:
    zone, _ = make_hosted_zone(moto)
    small = path(moto, zone, max_changes=4)
    small.apply(creates(zone, 3), MOTO_CREDENTIALS)
    before = [small.read(f"h{i}.{zone}", A, MOTO_CREDENTIALS) for i in range(3)]
    updates = [
        RRsetChange(f"h{i}.{zone}", A, before[i], rr(f"h{i}.{zone}", A, 60, "192.0.2.2")) for i in range(3)
    ]  # each update is DELETE + CREATE: 6 records

    with pytest.raises(ProviderError) as caught:
        small.apply(updates, MOTO_CREDENTIALS)

    assert "needs 6 record changes" in caught.value.message and "Nothing was applied" in caught.value.message
    assert [small.read(f"h{i}.{zone}", A, MOTO_CREDENTIALS) for i in range(3)] == before
    assert small.last_apply is None


def test_with_multi_batch_allowed_the_plan_is_split_and_every_batch_reported(moto: MotoServer) -> None:
    zone, _ = make_hosted_zone(moto)
    split = path(moto, zone, max_changes=4, allow_multi_batch=True)
    split.apply(creates(zone, 5), MOTO_CREDENTIALS)

    assert split.last_apply is not None
    assert [b.records for b in split.last_apply.batches] == [4, 1]
    assert split.last_apply.in_sync
    assert all(b.change_id for b in split.last_apply.batches)
    assert all(split.read(f"h{i}.{zone}", A, MOTO_CREDENTIALS) is not None for i in range(5))


def test_a_refused_later_batch_says_the_earlier_ones_are_applied(moto: MotoServer) -> None:
    """Multi-batch is not atomic: the error must say how far it got. (The refusal is provoked with moto's
    spurious 'already exists' for an rrset re-created with the values it was first created with.)"""
    zone, _ = make_hosted_zone(moto)
    split = path(moto, zone, max_changes=4, allow_multi_batch=True)
    again = f"again.{zone}"
    record = rr(again, A, 60, "192.0.2.50")
    split.apply([RRsetChange(again, A, None, record)], MOTO_CREDENTIALS)
    split.apply([RRsetChange(again, A, record, None)], MOTO_CREDENTIALS)

    with pytest.raises(ConflictError) as caught:
        split.apply([*creates(zone, 4), RRsetChange(again, A, None, record)], MOTO_CREDENTIALS)

    assert "applied 1 of 2 batches" in caught.value.message and "partly changed" in caught.value.message
    assert split.last_apply is not None and [b.records for b in split.last_apply.batches] == [4]
    assert split.read(f"h3.{zone}", A, MOTO_CREDENTIALS) is not None
    assert split.read(again, A, MOTO_CREDENTIALS) is None


def test_one_rrset_change_larger_than_a_batch_is_refused_even_with_multi_batch(moto: MotoServer) -> None:
    zone, _ = make_hosted_zone(moto)
    split = path(moto, zone, max_changes=2, allow_multi_batch=True)
    name = f"big.{zone}"
    with pytest.raises(ProviderError, match="One rrset change"):
        split.apply(
            [RRsetChange(name, A, None, rr(name, A, 60, "192.0.2.1", "192.0.2.2", "192.0.2.3"))], MOTO_CREDENTIALS
        )
    assert split.read(name, A, MOTO_CREDENTIALS) is None


def test_route53s_own_limit_of_1000_records_is_counted_the_same_way(moto: MotoServer) -> None:
    """1000 records go in one batch (moto enforces the same limit); 1001 are refused before anything is sent."""
    zone, _ = make_hosted_zone(moto)
    route53 = path(moto, zone)
    with pytest.raises(ProviderError, match="needs 1001 record changes"):
        route53.apply(creates(zone, 1001, "x"), MOTO_CREDENTIALS)
    assert route53.read(f"x0.{zone}", A, MOTO_CREDENTIALS) is None

    route53.apply(creates(zone, 1000), MOTO_CREDENTIALS)
    assert route53.last_apply is not None and [b.records for b in route53.last_apply.batches] == [1000]
    assert route53.read(f"h999.{zone}", A, MOTO_CREDENTIALS) is not None


# --- finding the hosted zone --------------------------------------------------------------------


def test_two_hosted_zones_with_the_name_need_hosted_zone_id(moto: MotoServer) -> None:
    zone, public_id = make_hosted_zone(moto)
    _, private_id = make_hosted_zone(moto, zone, private=True)
    name = f"www.{zone}"

    with pytest.raises(ProviderError) as caught:
        path(moto, zone).read(name, A, MOTO_CREDENTIALS)
    assert public_id in caught.value.message and private_id in caught.value.message
    assert "private" in caught.value.message and "hosted_zone_id" in caught.value.user_text()

    chosen = path(moto, zone, hosted_zone_id=f"/hostedzone/{private_id}")
    chosen.apply([RRsetChange(name, A, None, rr(name, A, 60, "10.0.0.1"))], MOTO_CREDENTIALS)
    listed = moto_client(moto).list_resource_record_sets(HostedZoneId=private_id)["ResourceRecordSets"]
    assert any(r["Name"] == name for r in listed)


def test_a_zone_without_hosted_zone_is_a_provider_error(moto: MotoServer) -> None:
    with pytest.raises(ProviderError, match="No Route53 hosted zone named absent-zone.test."):
        path(moto, "absent-zone.test.").read("www.absent-zone.test.", A, MOTO_CREDENTIALS)


# --- values as Route53 stores them ---------------------------------------------------------------


def test_txt_is_stored_in_route53_presentation_format(moto: MotoServer) -> None:
    """Quoted strings of at most 255 bytes; quotes and backslashes escaped; other bytes as octal escapes."""
    zone, zone_id = make_hosted_zone(moto)
    name = f"txt.{zone}"
    text = "a" * 250 + 'é "q" \\'
    path(moto, zone).apply([RRsetChange(name, TXT, None, rr(name, TXT, 60, text))], MOTO_CREDENTIALS)

    stored = moto_client(moto).list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType="TXT", MaxItems="1"
    )["ResourceRecordSets"][0]["ResourceRecords"]
    assert stored == [{"Value": '"' + "a" * 250 + '\\303\\251 \\"q" "\\" \\\\"'}]


def test_an_alias_record_is_refused_rather_than_misread(moto: MotoServer) -> None:
    zone, zone_id = make_hosted_zone(moto)
    name = f"alias.{zone}"
    alias = {"HostedZoneId": zone_id, "DNSName": f"www.{zone}", "EvaluateTargetHealth": False}
    change = {"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": "A", "AliasTarget": alias}}
    moto_client(moto).change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [change]})
    with pytest.raises(ProviderError, match="an alias record"):
        path(moto, zone).read(name, A, MOTO_CREDENTIALS)


# --- moto's fidelity gaps (why compare-and-swap is re-read-before-write there) -------------------


def test_moto_gap_a_create_over_an_existing_rrset_is_accepted(moto: MotoServer) -> None:
    """Real Route53 answers InvalidChangeBatch 'already exists'; moto adds a second rrset."""
    zone, zone_id = make_hosted_zone(moto)
    client = moto_client(moto)
    record = {"Name": f"dup.{zone}", "Type": "A", "TTL": 60}
    for value in ("192.0.2.1", "192.0.2.2"):
        change = {"Action": "CREATE", "ResourceRecordSet": {**record, "ResourceRecords": [{"Value": value}]}}
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [change]})
    with pytest.raises(ProviderError, match="several record sets"):
        path(moto, zone).read(f"dup.{zone}", A, MOTO_CREDENTIALS)


def test_moto_gap_a_delete_of_values_no_longer_current_is_accepted(moto: MotoServer) -> None:
    """Real Route53 refuses a DELETE whose values do not match the current ones; moto deletes anyway."""
    zone, zone_id = make_hosted_zone(moto)
    client = moto_client(moto)
    name = f"stale.{zone}"

    def change(action: str, value: str) -> None:
        record = {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}
        client.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": record}]}
        )

    change("CREATE", "192.0.2.1")
    change("UPSERT", "192.0.2.2")
    try:
        change("DELETE", "192.0.2.1")  # the plan-time value, no longer current
    except botocore.exceptions.ClientError:
        pytest.fail("moto now refuses a stale DELETE: update docs/providers.md (CAS may be provable on moto)")
    assert path(moto, zone).read(name, A, MOTO_CREDENTIALS) is None
