"""The user interface: preferences, scene properties, operators and the sidebar panel."""
