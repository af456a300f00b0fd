"""Landing-zone parsing and row-level validation of raw transactions."""
