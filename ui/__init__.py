"""Streamlit glue shared by the pages: sidebar state, cached resources, safe rendering. No retrieval logic."""
