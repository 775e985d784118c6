"""The resolver: hints in, complete directory records out, one vendor read per touched entity."""
