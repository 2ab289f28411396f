"""CoCoPIE workbench."""
