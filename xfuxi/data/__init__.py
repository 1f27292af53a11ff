"""Data: schema, channels, statistics, climatology, the embedded world, observations."""
