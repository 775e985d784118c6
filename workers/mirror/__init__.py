"""The mirror: each tenant's directory kept from the feed, and what reads it back."""
