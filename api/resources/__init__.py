"""The DataSync resources' handlers: one module per resource, over one shared base."""
