"""Sources and sinks for real providers; clients load lazily."""

__all__: list[str] = []
