"""Conversation context: exact token counts, stored history, the context builder."""
