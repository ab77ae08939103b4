"""Analyses and reflection runs: the engine, stored analyses, batch runs, early triggers,
retention roll-ups, their API and admin pages."""
