"""The supervisor that runs a session: analyse, plan, select, execute, evaluate."""
