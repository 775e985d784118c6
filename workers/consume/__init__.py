"""The event path: consume, decide each outcome once, re-drive parked events, replay."""
