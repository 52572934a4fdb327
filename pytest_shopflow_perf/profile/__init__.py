"""Load profiles: marker, ini, environment and command line resolved into one :class:`LoadProfile`."""
