"""Built-in filters, written and registered exactly as a third-party plugin would be."""
