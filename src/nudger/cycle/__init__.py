"""One cycle of an account: the state (all SQL), sync, acting on the plan."""
