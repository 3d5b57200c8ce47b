"""Pure feature builders: tables in, a point-in-time feature frame out (no I/O)."""
