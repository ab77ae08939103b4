"""Knowledge documents the retrieval worker searches: model, loading, admin."""
