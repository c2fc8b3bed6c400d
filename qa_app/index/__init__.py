"""chunks → dense (Chroma) + lexical (BM25) indexes → hybrid retrieval."""
