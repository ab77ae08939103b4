"""Retrieval: embeddings, the BM25 term index, vector / BM25 / hybrid search and its API."""
