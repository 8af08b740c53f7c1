"""Earlier versions of project modules, for the upgrade tests."""
