"""Retrieval: profiles, fusion, reranking, the engine that runs them, and the runs it produces."""
