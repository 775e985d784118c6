"""The Entra ID and Okta request sequences, in process, end with the WeCom directory the IdP
intended (the same sequences run against real processes in tests/integration)."""

from __future__ import annotations

from tests.provision.conftest import Provisioned
from tests.provision.sequences import replay


async def test_the_entra_sequence(provisioned: Provisioned) -> None:
    await replay("entra", provisioned.send)

    sim = provisioned.sim
    assert "alice@contoso.example" not in sim.users  # deleted last
    bob = sim.users["bob@contoso.example"]
    assert (bob.name, bob.status, bob.departments) == ("Bob Chen", 1, (1,))  # removed from Sales
    assert [d.name for d in sim.departments.values()] == [sim.root_name, "Sales"]
    assert all(o == "applied" for o, _ in await provisioned.outcomes())


async def test_the_okta_sequence(provisioned: Provisioned) -> None:
    await replay("okta", provisioned.send)

    sim = provisioned.sim
    carol = sim.users["carol@example.com"]
    assert (carol.name, carol.position, carol.mobile) == ("Carol Wang", "Manager", "13800001002")
    assert (carol.status, carol.departments) == (2, (1,))  # deactivated, back in the root
    assert [d.name for d in sim.departments.values()] == [sim.root_name]  # the group deleted
