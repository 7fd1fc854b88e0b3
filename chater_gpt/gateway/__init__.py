"""The HTTP gateway (placeholder)."""
