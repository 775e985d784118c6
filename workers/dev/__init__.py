"""Everything on one machine: Tansu and scim2-server as processes, `orgstream dev` and `demo`."""
