"""Desktop glue: the plugin class, actions, map tool, background tasks, messages."""
