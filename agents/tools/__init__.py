"""Worker agents and what they use: Text2SQL with its guard, hybrid retrieval."""
