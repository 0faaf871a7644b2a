"""Location: released NFS and SMB documents round-trip, and the wire shapes are DataSync's."""

from __future__ import annotations

from api.domain.location import Location, LocationType, SmbSettings
from contract.model import shape
from tests.api.domain.released import released_rows


def _released(kind: LocationType) -> tuple[dict[str, object], Location]:
    for row in released_rows("location"):
        if row["LocationType"] == kind.value:
            return row, Location.from_row(row)
    raise AssertionError(f"no {kind} location in the dump")


def test_released_documents_read_and_write_back_unchanged() -> None:
    for kind in LocationType:
        row, location = _released(kind)
        assert location.to_row() == row
        assert Location.from_row(location.to_row()) == location


def test_nfs_wire_shape() -> None:
    row, nfs = _released(LocationType.NFS)
    wire = nfs.to_wire()
    assert set(wire) <= set(shape("DescribeLocationNfsResponse")["members"])
    assert wire["OnPremConfig"] == {"AgentArns": row["_Agents"]}
    assert wire["MountOptions"] == {"Version": "AUTOMATIC"}
    assert wire["LocationUri"] == row["LocationUri"]
    assert set(nfs.list_entry()) == set(shape("LocationListEntry")["members"])


def test_smb_wire_shape_shows_defaults_and_given_members() -> None:
    _, smb = _released(LocationType.SMB)
    wire = smb.to_wire()
    assert set(wire) <= set(shape("DescribeLocationSmbResponse")["members"])
    assert wire["AuthenticationType"] == "NTLM"
    given = Location.from_row(
        {**smb.to_row(), "User": "u", "AuthenticationType": "KERBEROS", "DnsIpAddresses": ["::1"]}
    )
    wire = given.to_wire()
    assert (wire["User"], wire["AuthenticationType"]) == ("u", "KERBEROS")
    assert wire["DnsIpAddresses"] == ["::1"]


def test_an_update_names_only_what_changes() -> None:
    base = SmbSettings(user="u", domain="d")
    assert SmbSettings.from_request({"Domain": "e"}, base) == SmbSettings(user="u", domain="e")
    _, nfs = _released(LocationType.NFS)
    moved = nfs.moved(
        server_hostname="127.0.0.1",
        subdirectory="/srv/x",
        agent_arns=nfs.agent_arns,
        mount_version="NFS4_1",
        smb=None,
    )
    assert moved.location_uri == "nfs://127.0.0.1/srv/x/"
    assert moved.to_wire()["MountOptions"] == {"Version": "NFS4_1"}
    assert moved.for_agent()["Subdirectory"] == "/srv/x"
