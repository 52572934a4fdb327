"""What a run produced: :class:`LoadResult` and the typed run record every later layer reads."""
