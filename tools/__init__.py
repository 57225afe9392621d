"""Development commands that are not part of the runtime package (not packaged; run from the repository)."""
