"""The composition root: the only place that wires engine, api and agents together."""
