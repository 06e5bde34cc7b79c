"""A dataset's rows: read from and written to files (``_io``), taken from Hugging Face and pyarrow tables
(``_arrow``), added (``_add``), changed by the official SDK's row and column operations (``_ops``) and
seen as plain Python values (``_rows``). Imports no other room."""
