"""The HTTP edge shared by every domain: declared operations, tracing headers, error rendering."""
