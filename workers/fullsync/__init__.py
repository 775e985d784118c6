"""The full sync: walk, reconcile, the schedule, and DingTalk's failed-callback recovery."""
