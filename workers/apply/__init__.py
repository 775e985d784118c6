"""Applying one event to a tenant's SCIM target: the applier, the mapping, the deletion guard."""
