"""The runtime view of a managed zone: its change paths and the servers that must agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import CredentialError, ZoneNotConfigured
from core.liveness import Probe
from core.ports import ChangePath, CredentialSource
from core.records import is_subdomain


@dataclass(frozen=True)
class TrustPath:
    """What a change path depends on; a backup is only useful where these differ from the primary's."""

    identity: str  # who it acts as (a Vault AppRole, an IAM role)
    credential_source: str  # where the secret comes from (a Vault, a sealed file)
    control_plane: str  # what it talks to (a DNS primary, an HTTP API, Route53)

    def shared_with(self, other: TrustPath) -> list[str]:
        shared = []
        if self.identity == other.identity:
            shared.append(f"identity {self.identity}")
        if self.credential_source == other.credential_source:
            shared.append(f"credential source {self.credential_source}")
        if self.control_plane == other.control_plane:
            shared.append(f"control plane {self.control_plane}")
        return shared


@dataclass(frozen=True)
class PathRuntime:
    """A change path together with the credential source that unlocks it."""

    path: ChangePath
    credentials: CredentialSource
    trust: TrustPath
    sealed: bool = False  # a sealed envelope: opened only with the policy's sealed_count approvals


@dataclass(frozen=True)
class ZoneRuntime:
    name: str
    paths: tuple[PathRuntime, ...]
    probes: tuple[Probe, ...] = ()  # liveness checks of a change's new target before "recovered"


class ZoneDirectory:
    def __init__(self, zones: Sequence[ZoneRuntime]) -> None:
        self._zones = {z.name: z for z in zones}

    def for_name(self, name: str) -> ZoneRuntime:
        """The longest managed zone containing ``name``."""
        matches = [z for z in self._zones.values() if is_subdomain(name, z.name)]
        if not matches:
            managed = ", ".join(sorted(self._zones)) or "none"
            raise ZoneNotConfigured(
                f"`{name}` is not in any zone breakglass manages.",
                hint=f"Managed zones: {managed}.",
            )
        return max(matches, key=lambda z: len(z.name))

    def get(self, zone: str) -> ZoneRuntime:
        try:
            return self._zones[zone]
        except KeyError:
            raise ZoneNotConfigured(f"Zone `{zone}` is no longer configured.") from None

    def names(self) -> list[str]:
        return sorted(self._zones)


def shares_failed_trust(route: PathRuntime, failures: Sequence[tuple[PathRuntime, Exception]]) -> str:
    """Why ``route`` would fail like an earlier path ("" if it is worth a try).

    A refused or unreachable credential fails again for the same identity; a broken server fails
    again for any path to the same control plane. Everything else is a separate trust path.
    """
    for failed, error in failures:
        dimension = "identity" if isinstance(error, CredentialError) else "control plane"
        shared = [s for s in route.trust.shared_with(failed.trust) if s.startswith(dimension)]
        if shared:
            return f"it shares {', '.join(shared)} with {failed.path.name}, which just failed"
    return ""
