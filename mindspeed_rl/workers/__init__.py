"""Ray side of the suite: placement groups, worker groups with rank/world setup, and the workers
that wrap engines (actor + rollout hybrid, reference, reward). No algorithm math lives here."""
