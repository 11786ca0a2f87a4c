"""Indexes: tokenisation, Tantivy BM25 with its batch scorer, encoders, and LanceDB vector tables."""
