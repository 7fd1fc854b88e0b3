"""Conversation context: exact token counts and the context builder (stored history
is `chater_gpt/storage/history.py`)."""
