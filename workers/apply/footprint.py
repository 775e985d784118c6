"""A tenant's footprint on a SCIM target, read in full, and the target's ledger told of it."""

from __future__ import annotations

from workers.apply.mapping import Namespace, owned_part
from workers.scim.target import Resource, ScimTarget
from workers.store.target_ledger import Known, TargetLedger


async def read_footprint(
    target: ScimTarget, ledger: TargetLedger, ns: Namespace
) -> tuple[list[Resource], list[Resource]]:
    """The tenant's Groups and Users on the target, every page read (few targets filter on
    `sw`), and the ledger told of them: a ledger that starts empty in front of a populated
    target (an upgrade, a lost store) adopts what is there, in one pass. The full sync's
    reconcile reads the target this way too. ([groups], [users])"""
    read = []
    for kind, prefix in (("Groups", ns.department_prefix), ("Users", ns.user_prefix)):
        ours = [
            r
            for r in await target.list_all(kind)
            if str(r.get("externalId", "")).startswith(prefix)
        ]
        members = {
            str(r["id"]): {str(m.get("value")) for m in r["members"]}
            for r in ours
            if "members" in r  # some targets never show them: keep what the ledger knows
        }
        listed = {str(r["externalId"]): Known(str(r["id"]), owned_part(r)) for r in ours}
        await ledger.replace_all(kind, prefix, listed, members)
        read.append(ours)
    return read[0], read[1]
