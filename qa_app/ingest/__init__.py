"""files → text → cleaned text → chunks."""
