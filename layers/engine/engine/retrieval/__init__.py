"""file_search: the Files and Vector Stores APIs, ingestion (parse, chunk, embed, index) and hybrid search."""
